/* The MPI program of the injection tests: linked against the container's own MPI, it
 * reports the MPI library it actually runs with. Built inside each MPI test rootfs by
 * tests/rigs/rootfs.sh. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0, rank = -1, size = 0;
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mpi-version: MPI_Init failed\n");
        return 2;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_library_version(version, &len);
    printf("rank %d of %d\n%s\n", rank, size, version);
    MPI_Finalize();
    return 0;
}
