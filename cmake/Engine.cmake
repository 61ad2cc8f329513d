# The inference engine: llama.cpp (libllama + libmtmd).
#
# The pinned source comes from the npm package node-llama-cpp, which carries llama.cpp as a git
# bundle. It is fetched once into a cache folder outside the clone and built there, Release, keyed
# by the pin and the backend, so fresh clones and CI runs on the same machine reuse the engine
# build. DRIVEVQA_LLAMA_CPP_DIR points at any other llama.cpp checkout instead (built in this
# build tree). The pin is the package version plus the llama.cpp commit its bundle must hold: a
# republished package or a damaged cache is refused, not built.

set(DRIVEVQA_ENGINE_NPM_PACKAGE "node-llama-cpp")
set(DRIVEVQA_ENGINE_NPM_VERSION "3.22.1")
set(DRIVEVQA_ENGINE_COMMIT "de3ff815ea7d559ee917f063901b8986f038abc6")  # 2026-09-28

set(DRIVEVQA_LLAMA_CPP_DIR "" CACHE PATH "Use this llama.cpp checkout instead of the pinned one")
if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_drivevqa_cache_default "$ENV{XDG_CACHE_HOME}/drivevqa")
else()
  set(_drivevqa_cache_default "$ENV{HOME}/.cache/drivevqa")
endif()
set(DRIVEVQA_CACHE_DIR "${_drivevqa_cache_default}" CACHE PATH "Where the pinned engine is fetched and built")
option(GGML_CUDA "Build the engine with the CUDA backend" OFF)
# llama.cpp's RPC backend (GGML_RPC) and its server, for run/ask --rpc: the text model's layers on
# other hosts. On by default: CPU-only and small, and the tests start real servers.
option(DRIVEVQA_RPC "Build the engine with the RPC backend and its rpc-server" ON)

set(_engine_targets llama mtmd llama-mtmd-cli llama-server)
if(DRIVEVQA_RPC)
  list(APPEND _engine_targets ggml-rpc-server)  # the pin's name for tools/rpc (bin/ggml-rpc-server)
endif()
if(GGML_CUDA)
  set(_backend cuda)
else()
  set(_backend cpu)
endif()

if(DRIVEVQA_LLAMA_CPP_DIR)
  set(ENGINE_SOURCE_DIR "${DRIVEVQA_LLAMA_CPP_DIR}")
  set(ENGINE_BUILD_DIR "${CMAKE_BINARY_DIR}/engine-${_backend}")
  set(_engine_home "${CMAKE_BINARY_DIR}")
else()
  set(_engine_home "${DRIVEVQA_CACHE_DIR}/llama.cpp-${DRIVEVQA_ENGINE_NPM_VERSION}")
  set(ENGINE_SOURCE_DIR "${_engine_home}/src")
  set(ENGINE_BUILD_DIR "${_engine_home}/build-${_backend}-release")
endif()
file(MAKE_DIRECTORY "${_engine_home}")

function(_engine_run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "engine set-up step failed (${rc}): ${ARGN}")
  endif()
endfunction()

# One configure at a time may fetch or build the shared engine.
file(LOCK "${_engine_home}/.lock" GUARD FILE TIMEOUT 3600)

if(NOT DRIVEVQA_LLAMA_CPP_DIR AND NOT EXISTS "${ENGINE_SOURCE_DIR}/.drivevqa-fetched")
  find_program(NPM npm REQUIRED)
  find_program(GIT git REQUIRED)
  message(STATUS "Fetching llama.cpp from ${DRIVEVQA_ENGINE_NPM_PACKAGE}@${DRIVEVQA_ENGINE_NPM_VERSION}")
  set(_pkg "${_engine_home}/pkg")
  file(REMOVE_RECURSE "${_pkg}" "${ENGINE_SOURCE_DIR}")
  file(MAKE_DIRECTORY "${_pkg}")
  _engine_run(${NPM} pack --silent "${DRIVEVQA_ENGINE_NPM_PACKAGE}@${DRIVEVQA_ENGINE_NPM_VERSION}"
              WORKING_DIRECTORY "${_pkg}")
  file(GLOB _tgz "${_pkg}/*.tgz")
  _engine_run(${CMAKE_COMMAND} -E tar xzf "${_tgz}" package/llama/gitRelease.bundle
              WORKING_DIRECTORY "${_pkg}")
  _engine_run(${GIT} clone --quiet "${_pkg}/package/llama/gitRelease.bundle" "${ENGINE_SOURCE_DIR}")
  file(REMOVE_RECURSE "${_pkg}")
  file(WRITE "${ENGINE_SOURCE_DIR}/.drivevqa-fetched" "${DRIVEVQA_ENGINE_NPM_VERSION}\n")
endif()

# The fetched source (new or cached) is the pinned commit.
if(NOT DRIVEVQA_LLAMA_CPP_DIR)
  find_program(GIT git REQUIRED)
  execute_process(COMMAND ${GIT} -C "${ENGINE_SOURCE_DIR}" rev-parse HEAD
                  OUTPUT_VARIABLE _engine_commit OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
  if(NOT _rc EQUAL 0 OR NOT _engine_commit STREQUAL DRIVEVQA_ENGINE_COMMIT)
    # The next configure fetches and builds again.
    file(REMOVE "${ENGINE_SOURCE_DIR}/.drivevqa-fetched" "${ENGINE_BUILD_DIR}/.drivevqa-built")
    message(FATAL_ERROR "${ENGINE_SOURCE_DIR} holds llama.cpp commit '${_engine_commit}', not the pinned "
                        "${DRIVEVQA_ENGINE_COMMIT} of ${DRIVEVQA_ENGINE_NPM_PACKAGE}@${DRIVEVQA_ENGINE_NPM_VERSION}; "
                        "it was removed from use: configure again to fetch it anew")
  endif()
endif()

# Our patches (cmake/engine-patches/*.patch, applied in name order) on the pinned source. The applied set
# is recorded by its hash; a changed set resets the source to the pinned commit and applies anew, and
# every configure checks that each patch is still in place (git apply --reverse --check). A checkout of
# the user's own (DRIVEVQA_LLAMA_CPP_DIR) is never modified: without the patches it is refused, saying
# how to apply them (drivevqa calls the API patch 0002 adds).
file(GLOB _engine_patches "${CMAKE_CURRENT_LIST_DIR}/engine-patches/*.patch")
list(SORT _engine_patches)
set(_patch_hashes "")
foreach(_patch IN LISTS _engine_patches)
  file(SHA256 "${_patch}" _h)
  string(APPEND _patch_hashes "${_h};")
endforeach()
string(SHA256 _patch_set "${_patch_hashes}")
function(_engine_patches_in_place out_var)
  set(_ok TRUE)
  foreach(_patch IN LISTS _engine_patches)
    execute_process(COMMAND ${GIT} -C "${ENGINE_SOURCE_DIR}" apply --reverse --check "${_patch}"
                    RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
    if(NOT _rc EQUAL 0)
      set(_ok FALSE)
    endif()
  endforeach()
  set(${out_var} ${_ok} PARENT_SCOPE)
endfunction()
find_program(GIT git REQUIRED)
if(DRIVEVQA_LLAMA_CPP_DIR)
  _engine_patches_in_place(_in_place)
  if(NOT _in_place)
    message(FATAL_ERROR "${DRIVEVQA_LLAMA_CPP_DIR} lacks drivevqa's engine patches; apply them with "
                        "git -C ${DRIVEVQA_LLAMA_CPP_DIR} apply ${CMAKE_CURRENT_LIST_DIR}/engine-patches/*.patch")
  endif()
else()
  set(_patch_stamp "${ENGINE_SOURCE_DIR}/.drivevqa-patches")
  set(_applied "")
  if(EXISTS "${_patch_stamp}")
    file(READ "${_patch_stamp}" _applied)
  endif()
  if(_applied STREQUAL _patch_set)
    _engine_patches_in_place(_in_place)
  else()
    set(_in_place FALSE)
  endif()
  if(NOT _in_place)
    message(STATUS "Applying drivevqa's engine patches to the pinned llama.cpp")
    file(REMOVE "${_patch_stamp}")
    _engine_run(${GIT} -C "${ENGINE_SOURCE_DIR}" reset --quiet --hard ${DRIVEVQA_ENGINE_COMMIT})
    _engine_run(${GIT} -C "${ENGINE_SOURCE_DIR}" clean --quiet -fd -e ".drivevqa-*")
    foreach(_patch IN LISTS _engine_patches)
      execute_process(COMMAND ${GIT} -C "${ENGINE_SOURCE_DIR}" apply --whitespace=nowarn "${_patch}"
                      RESULT_VARIABLE _rc ERROR_VARIABLE _err)
      if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "engine patch ${_patch} does not apply to llama.cpp ${DRIVEVQA_ENGINE_COMMIT}:\n${_err}")
      endif()
    endforeach()
    file(WRITE "${_patch_stamp}" "${_patch_set}")
  endif()
endif()

# The stamp is written only after a complete build, so an interrupted build is resumed, never trusted.
set(_stamp "${ENGINE_BUILD_DIR}/.drivevqa-built")
# A cache built with other options is rebuilt in place (incrementally: the same build folder).
set(_stamp_text "${DRIVEVQA_ENGINE_NPM_VERSION};${_backend};rpc ${DRIVEVQA_RPC};${_engine_targets};patches ${_patch_set}")
set(_have_stamp FALSE)
if(EXISTS "${_stamp}")
  file(READ "${_stamp}" _old_stamp)
  if(_old_stamp STREQUAL _stamp_text)
    set(_have_stamp TRUE)
  endif()
endif()
if(DRIVEVQA_LLAMA_CPP_DIR OR NOT _have_stamp)
  message(STATUS "Building llama.cpp in ${ENGINE_BUILD_DIR} (first time: several minutes)")
  cmake_host_system_information(RESULT _ncpu QUERY NUMBER_OF_LOGICAL_CORES)
  _engine_run(${CMAKE_COMMAND} -S "${ENGINE_SOURCE_DIR}" -B "${ENGINE_BUILD_DIR}"
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_CUDA=${GGML_CUDA} -DGGML_RPC=${DRIVEVQA_RPC}
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF)
  _engine_run(${CMAKE_COMMAND} --build "${ENGINE_BUILD_DIR}" -j ${_ncpu} --target ${_engine_targets})
  file(WRITE "${_stamp}" "${_stamp_text}")
endif()
file(LOCK "${_engine_home}/.lock" RELEASE)

set(ENGINE_BIN_DIR "${ENGINE_BUILD_DIR}/bin")
add_library(llama_cpp_engine INTERFACE)
target_include_directories(llama_cpp_engine SYSTEM INTERFACE
  "${ENGINE_SOURCE_DIR}/include" "${ENGINE_SOURCE_DIR}/ggml/include" "${ENGINE_SOURCE_DIR}/tools/mtmd")
target_link_libraries(llama_cpp_engine INTERFACE
  "${ENGINE_BIN_DIR}/libmtmd.so" "${ENGINE_BIN_DIR}/libllama.so"
  "${ENGINE_BIN_DIR}/libggml.so" "${ENGINE_BIN_DIR}/libggml-base.so")
if(DRIVEVQA_RPC)
  target_link_libraries(llama_cpp_engine INTERFACE "${ENGINE_BIN_DIR}/libggml-rpc.so")
endif()
set(ENGINE_QWEN2_VOCAB "${ENGINE_SOURCE_DIR}/models/ggml-vocab-qwen2.gguf")
set(ENGINE_MTMD_CLI "${ENGINE_BIN_DIR}/llama-mtmd-cli")
set(ENGINE_SERVER "${ENGINE_BIN_DIR}/llama-server")
# The RPC backend's server ("" without DRIVEVQA_RPC): run on each host that takes layers (README).
if(DRIVEVQA_RPC)
  set(ENGINE_RPC_SERVER "${ENGINE_BIN_DIR}/ggml-rpc-server")
else()
  set(ENGINE_RPC_SERVER "")
endif()
