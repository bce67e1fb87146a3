/* Stand-in for <stdint.h> while the header is preprocessed into the cffi
 * cdef (cmake/cdef.cmake): cffi knows uint64_t and friends itself. */
