/* Stand-in for <stddef.h> while the header is preprocessed into the cffi
 * cdef (cmake/cdef.cmake): cffi knows size_t itself. */
