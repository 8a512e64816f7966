// vminitd's gRPC core configuration: what a server on one already-open
// connection needs, in place of the library's BuildCoreConfiguration,
// which registers every resolver, load balancer, handshaker and xDS piece
// of a client. Linked only into the static vminitd, whose link then leaves
// those parts of libgrpc.a out (a smaller binary with fewer static
// constructors: less for a TCG guest to page in and translate at boot).
// The names are gRPC 1.51's (Debian 12), declared here because Debian
// does not ship gRPC's internal headers; a mismatch fails the link.
namespace grpc_core {
class CoreConfiguration {
 public:
  class Builder;
};
void RegisterBuiltins(CoreConfiguration::Builder*);
void RegisterHttpFilters(CoreConfiguration::Builder*);
void RegisterDeadlineFilter(CoreConfiguration::Builder*);
void RegisterMessageSizeFilter(CoreConfiguration::Builder*);
void RegisterResourceQuota(CoreConfiguration::Builder*);
}  // namespace grpc_core
namespace grpc_event_engine {
namespace experimental {
void RegisterEventEngineChannelArgPreconditioning(grpc_core::CoreConfiguration::Builder*);
}  // namespace experimental
}  // namespace grpc_event_engine

namespace grpc_core {
void BuildCoreConfiguration(CoreConfiguration::Builder* b) {
  grpc_event_engine::experimental::RegisterEventEngineChannelArgPreconditioning(b);
  RegisterBuiltins(b);
  RegisterHttpFilters(b);
  RegisterDeadlineFilter(b);
  RegisterMessageSizeFilter(b);
  RegisterResourceQuota(b);
}
}  // namespace grpc_core
