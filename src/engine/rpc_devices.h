// llama.cpp's RPC backend: the text model's layers on rpc-server processes of other hosts (run and
// ask --rpc, README "One model over several hosts").
//
// Each server is one or more RPC devices of the engine. They are not added to the engine's device
// registry (where the vision tower, which picks the first GPU-type device, would find them): they go
// to the text model only, through llama_model_params.devices (engine/model.cpp). The engine keeps
// a connected server for the process's life; so does this list.
#pragma once

#include <ggml-backend.h>

#include <string>
#include <vector>

namespace drivevqa {

// "host:port,host:port,...": the servers of --rpc, in order. `flag` names the option in messages.
// Throws UsageError naming the entry when one is not host:port (a port in 1..65535; no IPv6
// addresses, which the engine's client does not take), is given twice, or there are more than the
// engine's limit of servers.
std::vector<std::string> parse_rpc_servers(const std::string& list, const std::string& flag = "--rpc");

// The RPC devices of `servers` (host:port each, as parse_rpc_servers gives them), connecting to each
// the first time it is named in this process. Throws ModelError naming the server when it cannot be
// resolved or reached within 5 s, UsageError when this engine was built without the RPC backend
// (-DDRIVEVQA_RPC=OFF). A server that accepts the connection but fails the engine's handshake (not
// an rpc-server, or another protocol version) ends the process with exit 4 and the engine's message,
// naming the server: the engine aborts there. One that accepts and never answers (busy with another
// client: a server serves one at a time) is waited for. Not thread-safe.
std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string>& servers);

// The devices that take the text model's offloaded layers with `servers`: their RPC devices first
// (as llama.cpp's own default order: fewer transfers), then this machine's GPUs; null-terminated,
// for llama_model_params.devices. Connects as rpc_devices does; the list lives as long as the process.
ggml_backend_dev_t* text_model_devices(const std::vector<std::string>& servers);

}  // namespace drivevqa
