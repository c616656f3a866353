/*
 * cuda-check SONAME
 *
 * Loads a CUDA runtime library (libcudart) by its soname the way an application does,
 * asks it for its own version, the driver's version and the number of devices, and
 * prints one line on stdout:
 *
 *   runtime=<int> driver=<int> count_error=<int> <error name> count=<int> libcuda=<path>
 *
 * runtime is 0 when cudaRuntimeGetVersion fails: CUDA 11 runtimes initialise the driver
 * to answer it and so, without a GPU, return the driver's error (100 or 35) instead;
 * CUDA 12 and later answer without the driver. driver is 0 when no libcuda was found.
 * libcuda is the real path (symlinks resolved) of the driver library the runtime
 * loaded, or "none" when it loaded none. Build with -ldl -rdynamic (see dlclose below).
 *
 * The test machines have no GPU. Even so the real NVIDIA driver library (libcuda)
 * answers the runtime's version check before it looks for a device:
 *   100 cudaErrorNoDevice           the driver accepted the runtime's version (the
 *                                   container would run on a host with a GPU),
 *    35 cudaErrorInsufficientDriver  the driver is older than the runtime needs.
 *
 * Exit status: 0 for no error or cudaErrorNoDevice, 2 for cudaErrorInsufficientDriver,
 * 1 for any other error, 3 when the runtime library cannot be loaded or lacks a symbol.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CUDA_SUCCESS = 0, CUDA_ERROR_INSUFFICIENT_DRIVER = 35, CUDA_ERROR_NO_DEVICE = 100 };

typedef int (*int_out_fn)(int *);
typedef const char *(*error_name_fn)(int);

static char libcuda[PATH_MAX] = "none";

static void record_libcuda(const char *name) {
  char real[PATH_MAX];
  if (realpath(name, real) != NULL) {
    snprintf(libcuda, sizeof libcuda, "%s", real);
  } else {
    snprintf(libcuda, sizeof libcuda, "%s", name);
  }
}

static int find_libcuda(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  const char *name = info->dlpi_name;
  if (name == NULL || strstr(name, "libcuda.so") == NULL) return 0;
  record_libcuda(name);
  return 1;
}

/* The runtime unloads libcuda again when the driver cannot be initialised (always so
 * without a GPU), so the program also looks at libcuda when the runtime closes it: this
 * dlclose, exported from the executable (-rdynamic), comes before the C library's in the
 * runtime's symbol lookup. Loading is left to the runtime, so the search for libcuda is
 * its own. */
int dlclose(void *handle) {
  static int (*real_dlclose)(void *);
  if (real_dlclose == NULL) real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
  struct link_map *map = NULL;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != NULL &&
      map->l_name != NULL && strstr(map->l_name, "libcuda.so") != NULL) {
    record_libcuda(map->l_name);
  }
  return real_dlclose(handle);
}

static void *need(void *lib, const char *symbol) {
  void *f = dlsym(lib, symbol);
  if (f == NULL) {
    printf("dlsym-failed: %s\n", symbol);
    exit(3);
  }
  return f;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SONAME   (e.g. libcudart.so.12)\n", argv[0]);
    return 3;
  }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (lib == NULL) {
    printf("dlopen-failed: %s\n", dlerror());
    return 3;
  }
  int_out_fn runtime_get_version = (int_out_fn)need(lib, "cudaRuntimeGetVersion");
  int_out_fn driver_get_version = (int_out_fn)need(lib, "cudaDriverGetVersion");
  int_out_fn get_device_count = (int_out_fn)need(lib, "cudaGetDeviceCount");
  error_name_fn get_error_name = (error_name_fn)need(lib, "cudaGetErrorName");

  int runtime = 0, driver = 0, count = 0;
  runtime_get_version(&runtime);
  driver_get_version(&driver);
  int err = get_device_count(&count);
  const char *err_name = get_error_name(err);
  /* Still loaded when the driver initialised (a GPU is present). */
  dl_iterate_phdr(find_libcuda, NULL);
  printf("runtime=%d driver=%d count_error=%d %s count=%d libcuda=%s\n", runtime, driver, err,
         err_name ? err_name : "(null)", count, libcuda);
  fflush(stdout);

  if (err == CUDA_SUCCESS || err == CUDA_ERROR_NO_DEVICE) return 0;
  if (err == CUDA_ERROR_INSUFFICIENT_DRIVER) return 2;
  return 1;
}
