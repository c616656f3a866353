1#!/bin/sh
# Custom environment shell code should follow

export LD_LIBRARY_PATH=/opt/mpich/lib:$LD_LIBRARY_PATH
export OMP_NUM_THREADS=4
FOO='single quoted'
BAR="x\y"
export BAZ=`id -u`
  INDENTED=1
export A="unterminated
