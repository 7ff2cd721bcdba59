// Device queries for the Python wrapper; see edgeguard_cuda.h.
#include "edgeguard_cuda.h"

extern "C" int eg_cuda_device_count(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // no device or driver: clear the error for later launches
        return 0;
    }
    return count;
}

extern "C" const char* eg_cuda_error_string(cudaError_t status) { return cudaGetErrorString(status); }
