# The cffi cdef of the Python host package (python/libactor/_cdef.h),
# generated from the public header by the C compiler's preprocessor:
#   cmake -DCC=cc -DHEADER=actor.h -DSTUBS=dir -DOUT=file -P cdef.cmake
# The header is not cdef-parsable as written (the error X-macro, the
# visibility attribute, <stddef.h>/<stdint.h>): the preprocessor expands the
# macros with __attribute__ neutralised and the two system headers replaced
# by empty stand-ins (cffi knows size_t and uint64_t), and a filter keeps
# the declarations only (no line markers, no blank lines).
foreach(v CC HEADER STUBS OUT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "cdef.cmake: -D${v}= is required")
  endif()
endforeach()
separate_arguments(cc UNIX_COMMAND "${CC}")
execute_process(
  COMMAND ${cc} -E -P -nostdinc -I${STUBS} "-D__attribute__(x)=" -x c ${HEADER}
  OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cdef.cmake: preprocessing ${HEADER} failed: ${err}")
endif()
# (CMake lists split on ";": carry the C semicolons through as a placeholder)
string(REPLACE ";" "@SEMI@" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(text "/* Generated from include/libactor/actor.h by cmake/cdef.cmake: do not edit.\n   cmake --build BUILD --target cdef-update rewrites it. */\n")
foreach(l IN LISTS lines)
  string(STRIP "${l}" s)
  if(s STREQUAL "" OR s MATCHES "^#")
    continue()
  endif()
  string(REPLACE "@SEMI@" ";" l "${l}")
  string(APPEND text "${l}\n")
endforeach()
file(WRITE ${OUT}.tmp "${text}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.tmp)
