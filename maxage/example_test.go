package maxage_test

import (
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// A one-minute age for services that scale out often; everything else
// keeps its default.
func ExampleConfig() {
	cfg := maxage.Config{MaxConnectionAge: time.Minute}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	sp := cfg.ServerParameters()
	fmt.Println(sp.MaxConnectionAge, sp.MaxConnectionAgeGrace, sp.MaxConnectionIdle)
	// Use the library alone, without a grpcmgmt.Manager:
	_ = grpc.NewServer(grpc.KeepaliveParams(sp), grpc.KeepaliveEnforcementPolicy(cfg.EnforcementPolicy()))
	// Output: 1m0s 30s 10m0s
}

// Validation names the field and its allowed range.
func ExampleConfig_Validate() {
	err := maxage.Config{MaxConnectionAgeGrace: -time.Second}.Validate()
	fmt.Println(err)
	// Output: maxage: MaxConnectionAgeGrace must be within 1ms..maxage.Off (0 means the default), got -1s
}

// Off turns the age limit off and keeps the other defaults.
func ExampleOff() {
	sp := maxage.Config{MaxConnectionAge: maxage.Off}.ServerParameters()
	fmt.Println(sp.MaxConnectionAge == maxage.Off, sp.MaxConnectionIdle)
	// Output: true 10m0s
}
