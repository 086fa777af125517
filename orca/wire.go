package orca

import (
	"math"
	"slices"

	grpcorca "google.golang.org/grpc/orca"
	"google.golang.org/protobuf/encoding/protowire"
)

// The field numbers of xds.data.orca.v3.OrcaLoadReport
// (xds/data/orca/v3/orca_load_report.proto) that a report carries, and
// those of a map entry.
const (
	fieldCPUUtilization         protowire.Number = 1
	fieldMemUtilization         protowire.Number = 2
	fieldRequestCost            protowire.Number = 4
	fieldUtilization            protowire.Number = 5
	fieldRPSFractional          protowire.Number = 6
	fieldEPS                    protowire.Number = 7
	fieldNamedMetrics           protowire.Number = 8
	fieldApplicationUtilization protowire.Number = 9
	fieldMapKey                 protowire.Number = 1
	fieldMapValue               protowire.Number = 2
)

// appendLoadReport appends the wire encoding of loadReport(sm), the message
// a per-call trailer carries, to b: the bytes proto.Marshal with
// Deterministic set gives (fields in number order, map entries by key).
//
// It encodes with protowire rather than proto.Marshal because marshalling
// the generated message makes the protobuf runtime build its reflection
// tables for OrcaLoadReport on first use: about 21 KB of heap that every
// server would keep for as long as it runs, for one message of scalars and
// string-to-double maps. On a server whose live heap is a megabyte or two,
// below Go's 4 MiB minimum heap goal, each kilobyte it keeps makes the
// garbage collector run more often and mark more (docs/operations.md, "CPU
// per call: a small heap"). The out-of-band stream still sends the
// generated message (oob.go); TestAppendLoadReport holds the two equal.
func appendLoadReport(b []byte, sm *grpcorca.ServerMetrics) []byte {
	b = appendDouble(b, fieldCPUUtilization, sm.CPUUtilization)
	b = appendDouble(b, fieldMemUtilization, sm.MemUtilization)
	b = appendMap(b, fieldRequestCost, sm.RequestCost)
	b = appendMap(b, fieldUtilization, sm.Utilization)
	b = appendDouble(b, fieldRPSFractional, sm.QPS)
	b = appendDouble(b, fieldEPS, sm.EPS)
	b = appendMap(b, fieldNamedMetrics, sm.NamedMetrics)
	return appendDouble(b, fieldApplicationUtilization, sm.AppUtilization)
}

// appendDouble appends a double field, except what loadReport leaves unset
// (-1) and what proto3 leaves out (+0).
func appendDouble(b []byte, n protowire.Number, v float64) []byte {
	if v == -1 || math.Float64bits(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

// appendMap appends a map<string, double> field: one length-delimited entry
// per key, in key order, each with its key and its value (a map entry
// carries both even when zero, as protobuf-go encodes them).
func appendMap(b []byte, n protowire.Number, m map[string]float64) []byte {
	if len(m) == 0 {
		return b
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		entry := protowire.SizeTag(fieldMapKey) + protowire.SizeBytes(len(k)) +
			protowire.SizeTag(fieldMapValue) + protowire.SizeFixed64()
		b = protowire.AppendTag(b, n, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entry))
		b = protowire.AppendTag(b, fieldMapKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, fieldMapValue, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(m[k]))
	}
	return b
}
