# The ABI check (docs/abi.md): does a shared library export exactly what its
# committed list says, under the SONAME the policy gives it?
#
#   cmake -DLIB=<libactor.so> -DLIST=<abi/libactor.symbols>
#         -DHEADER=<include/libactor/actor.h> -DREADELF=<readelf>
#         -DSONAME=<libactor.so.0> -DVERSION=<project version>
#         [-DUPDATE=1] -P abi/check.cmake
#
# The list is a dpkg-gensymbols symbols file (debian/ uses it as it is):
#   libactor.so.0 libactor0 #MINVER#
#   * Build-Depends-Package: libactor-dev
#    actor_call_start@LIBACTOR_0.1 0.1.0        <- name@node, first version
#
# Checked, each failure saying what changed and what the policy asks:
#   1. the SONAME is SONAME (lib<name>.so.<major>);
#   2. the exported symbols (readelf --dyn-syms: defined, global or weak,
#      with their version nodes) are exactly the list's;
#   3. the exported actor_* names are exactly the functions the header
#      declares ACTOR_EXTERN;
#   4. no dynamic relocation refers to one of them: the library's own calls
#      bind to itself (-Bsymbolic), whatever else the process has loaded;
#   5. no listed symbol claims a version newer than VERSION.
# With -DUPDATE=1 it rewrites LIST from the library instead (new symbols get
# VERSION, known ones keep theirs) — the `abi-update` build target.
cmake_minimum_required(VERSION 3.18)
foreach(v LIB LIST HEADER READELF SONAME VERSION)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "abi/check.cmake: -D${v}=... is required")
  endif()
endforeach()
get_filename_component(_name "${LIST}" NAME)
set(_fail "")
macro(_problem text)
  string(APPEND _fail "\n${text}")
endmacro()

function(_run out)
  execute_process(COMMAND ${ARGN} OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE r)
  if(NOT r EQUAL 0)
    message(FATAL_ERROR "abi: `${ARGN}` failed (${r}): ${e}")
  endif()
  set(${out} "${o}" PARENT_SCOPE)
endfunction()

# ---- what the library exports ------------------------------------------------
_run(_dyn ${READELF} --dyn-syms --wide "${LIB}")
string(REPLACE "\n" ";" _lines "${_dyn}")
set(_exported "")
foreach(l IN LISTS _lines)
  # Num: Value Size Type Bind Vis Ndx Name
  if(l MATCHES "^ *[0-9]+: +[0-9a-f]+ +[0-9]+ +[A-Z_]+ +(GLOBAL|WEAK|GNU_UNIQUE) +[A-Z]+ +([A-Z0-9]+) +([^ ]+)")
    set(ndx "${CMAKE_MATCH_2}")
    set(sym "${CMAKE_MATCH_3}")
    if(ndx STREQUAL "UND")
      continue()
    endif()
    string(REPLACE "@@" "@" sym "${sym}")
    if(NOT sym MATCHES "@")
      # A version definition shows as the bare node name; dpkg-gensymbols
      # writes it NODE@NODE.
      set(sym "${sym}@${sym}")
    endif()
    list(APPEND _exported "${sym}")
  endif()
endforeach()
list(REMOVE_DUPLICATES _exported)
list(SORT _exported)

# ---- the committed list --------------------------------------------------------
file(STRINGS "${LIST}" _list_lines)
set(_listed "")
set(_header_lines "")
foreach(l IN LISTS _list_lines)
  if(l MATCHES "^ ([^ ]+) ([^ ]+)")
    set(sym "${CMAKE_MATCH_1}")
    set(ver "${CMAKE_MATCH_2}")
    list(APPEND _listed "${sym}")
    string(MAKE_C_IDENTIFIER "${sym}" id)
    set(_since_${id} "${ver}")
    if(ver VERSION_GREATER VERSION)
      _problem("${_name}: ${sym} is listed as new in ${ver}, but this is ${VERSION}.")
    endif()
  else()
    list(APPEND _header_lines "${l}")
  endif()
endforeach()
list(SORT _listed)

if(UPDATE)
  set(out "")
  foreach(l IN LISTS _header_lines)
    string(APPEND out "${l}\n")
  endforeach()
  foreach(sym IN LISTS _exported)
    string(MAKE_C_IDENTIFIER "${sym}" id)
    if(DEFINED _since_${id})
      string(APPEND out " ${sym} ${_since_${id}}\n")
    else()
      string(APPEND out " ${sym} ${VERSION}\n")
    endif()
  endforeach()
  file(WRITE "${LIST}" "${out}")
  message(STATUS "abi: rewrote ${LIST} from ${LIB}; review it with git diff")
  return()
endif()

# 1. SONAME
_run(_dynamic ${READELF} --dynamic --wide "${LIB}")
if(_dynamic MATCHES "Library soname: \\[([^]]*)\\]")
  set(_soname "${CMAKE_MATCH_1}")
else()
  set(_soname "(none)")
endif()
if(NOT _soname STREQUAL SONAME)
  _problem("SONAME is ${_soname}; the policy gives ${SONAME} (lib<name>.so.<major version>).")
endif()

# 2. exported == listed
set(_added ${_exported})
list(REMOVE_ITEM _added ${_listed} "")
set(_removed ${_listed})
list(REMOVE_ITEM _removed ${_exported} "")
if(_added OR _removed)
  set(t "the exported symbols differ from ${_name}:")
  foreach(sym IN LISTS _added)
    string(APPEND t "\n  + ${sym}   (exported, not in the list)")
  endforeach()
  foreach(sym IN LISTS _removed)
    string(APPEND t "\n  - ${sym}   (in the list, no longer exported)")
  endforeach()
  if(_removed)
    string(APPEND t "\n  A symbol removed, renamed or moved to another node is an ABI BREAK:"
      "\n  bump the major version (project(VERSION) in CMakeLists.txt; the SONAME follows),"
      "\n  start new version nodes in cmake/libactor.map.in, record it in CHANGES.")
  endif()
  if(_added)
    string(APPEND t "\n  A symbol added is an ABI ADDITION: it ships in the next minor release;"
      "\n  after the first release of this node, list the new names in a new node"
      "\n  (cmake/libactor.map.in), and record them in CHANGES.")
  endif()
  string(APPEND t "\n  Then regenerate the list and commit it with the change:"
    "\n    cmake --build <build-dir> --target abi-update && git diff abi/"
    "\n  (docs/abi.md, \"Changing the ABI\").")
  _problem("${t}")
endif()

# 3. header declarations == exported actor_* names
file(READ "${HEADER}" _h)
string(REGEX MATCHALL "ACTOR_EXTERN[^;(]*[ *]actor_[a-z0-9_]+ *\\(" _decls "${_h}")
set(_declared "")
foreach(d IN LISTS _decls)
  string(REGEX REPLACE ".*[ *](actor_[a-z0-9_]+) *\\($" "\\1" n "${d}")
  list(APPEND _declared "${n}")
endforeach()
set(_names "")
foreach(sym IN LISTS _exported)
  string(REGEX REPLACE "@.*" "" n "${sym}")
  if(n MATCHES "^actor_")
    list(APPEND _names "${n}")
  endif()
endforeach()
set(_undeclared ${_names})
list(REMOVE_ITEM _undeclared ${_declared} "")
set(_undefined ${_declared})
list(REMOVE_ITEM _undefined ${_names} "")
foreach(n IN LISTS _undeclared)
  _problem("${n} is exported but not declared ACTOR_EXTERN in the public header.")
endforeach()
foreach(n IN LISTS _undefined)
  _problem("${n} is declared in the public header but the library does not export it (no definition?).")
endforeach()

# 4. -Bsymbolic: no relocation against the library's own public symbols
_run(_rel ${READELF} --relocs --wide "${LIB}")
string(REGEX MATCHALL "[ \n]actor_[a-z0-9_]+(@[A-Z0-9_.]+)?" _relsyms "${_rel}")
if(_relsyms)
  list(REMOVE_DUPLICATES _relsyms)
  string(REPLACE ";" "," _relsyms "${_relsyms}")
  _problem("dynamic relocations refer to the library's own public symbols (${_relsyms}):"
    " it must be linked with -Bsymbolic (actor_version_script in CMakeLists.txt),"
    " or it would call another copy's functions.")
endif()

list(LENGTH _exported _n)
if(_fail)
  message(FATAL_ERROR "abi: ${LIB} FAILS the ABI check:${_fail}\n")
endif()
message(STATUS "abi: ${_soname}: ${_n} symbols exported, exactly ${_name}; "
  "each declared in the header; own calls bound to itself")
