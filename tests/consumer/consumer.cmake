# Out-of-tree consumer test: install this build into a scratch prefix, then
# build tests/consumer/consumer.c against it through find_package(libactor)
# (shared and static targets) and through libactor.pc (see run.sh).
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
set_tests_properties(consumer_find_package_and_pkg_config PROPERTIES
  TIMEOUT 300
  LABELS "consumer;install"
  REQUIRED_FILES "$<TARGET_FILE:actor>;$<TARGET_FILE:actor_static>")
