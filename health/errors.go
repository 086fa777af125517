package health

import "errors"

// ErrAlreadyRegistered is returned by Reporter.Register when the server
// already serves grpc.health.v1.Health (grpc-go would otherwise exit the
// process on the duplicate registration). Pass your health.Server in
// Config.Server instead of registering it yourself.
var ErrAlreadyRegistered = errors.New("health: grpc.health.v1.Health is already registered on this server; pass your *health.Server in health.Config.Server instead of registering it yourself")

// ErrNilRegistrar is returned by Reporter.Register for a nil server.
var ErrNilRegistrar = errors.New("health: Register: server must not be nil")
