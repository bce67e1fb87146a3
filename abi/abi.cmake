# The ABI lists and their check (docs/abi.md).  Included from the top-level
# CMakeLists.txt after the libraries are defined.
#   ctest -R abi_          check each shared library against its list
#   --target abi-update    rewrite the lists from the built libraries
include_guard(GLOBAL)

find_program(ACTOR_READELF NAMES ${CMAKE_READELF} readelf)
if(NOT ACTOR_READELF)
  message(STATUS "libactor: readelf not found, no ABI check")
  return()
endif()

set(_abi_args -DHEADER=${PROJECT_SOURCE_DIR}/include/libactor/actor.h
  -DREADELF=${ACTOR_READELF} -DVERSION=${PROJECT_VERSION})
set(_abi_libs actor)
if(ACTOR_HAVE_PYTHON)
  list(APPEND _abi_libs actor_python)
endif()
set(_abi_update "")
foreach(t IN LISTS _abi_libs)
  get_target_property(out ${t} OUTPUT_NAME)
  if(NOT out)
    set(out ${t})
  endif()
  set(args ${_abi_args} -DLIB=$<TARGET_FILE:${t}>
    -DLIST=${PROJECT_SOURCE_DIR}/abi/lib${out}.symbols
    -DSONAME=lib${out}.so.${ACTOR_SOVERSION})
  string(REPLACE "-" "_" tname "abi_lib${out}_exports_only_its_list")
  if(ACTOR_BUILD_TESTS)
    add_test(NAME ${tname}
      COMMAND ${CMAKE_COMMAND} ${args} -P ${PROJECT_SOURCE_DIR}/abi/check.cmake)
    set_tests_properties(${tname} PROPERTIES LABELS abi TIMEOUT 60)
  endif()
  list(APPEND _abi_update
    COMMAND ${CMAKE_COMMAND} ${args} -DUPDATE=1 -P ${PROJECT_SOURCE_DIR}/abi/check.cmake)
endforeach()
add_custom_target(abi-update ${_abi_update} DEPENDS ${_abi_libs}
  COMMENT "Rewriting abi/*.symbols from the built libraries (review with git diff)"
  VERBATIM)
