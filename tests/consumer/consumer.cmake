# Out-of-tree consumer test: install this build into a scratch prefix, then
# build tests/consumer/consumer.c against it through find_package(libactor)
# (shared and static targets, and libactor::actor_python with the Python
# layer) and through libactor.pc / libactor-python.pc (see run.sh).
# Included from tests/CMakeLists.txt; needs bash, pkg-config and ldd.
include_guard(GLOBAL)

find_program(ACTOR_BASH bash)
if(NOT ACTOR_BASH)
  message(STATUS "libactor: bash not found, skipping consumer_find_package_and_pkg_config")
  return()
endif()

add_test(NAME consumer_find_package_and_pkg_config
  COMMAND ${ACTOR_BASH} ${CMAKE_CURRENT_LIST_DIR}/run.sh
          ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_BINARY_DIR}/consumer)
# ctest runs after a full build; REQUIRED_FILES makes a missing library a
# "Not Run" failure rather than a confusing install error.
set(_consumer_files "$<TARGET_FILE:actor>;$<TARGET_FILE:actor_static>")
if(ACTOR_HAVE_PYTHON)
  list(APPEND _consumer_files "$<TARGET_FILE:actor_python>"
    "$<TARGET_FILE:actor_python_static>" "$<TARGET_FILE:actor-pyhost>"
    "$<TARGET_FILE:subint-fork-probe>")
endif()
set_tests_properties(consumer_find_package_and_pkg_config PROPERTIES
  TIMEOUT 300
  LABELS "consumer;install"
  REQUIRED_FILES "${_consumer_files}")
