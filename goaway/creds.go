package goaway

import (
	"net"

	"google.golang.org/grpc/credentials"
)

// WrapCredentials returns server transport credentials that behave exactly
// like c (same handshake, AuthInfo, ALPN, peer) and hand grpc-go a
// connection the Tracker follows and can send a GOAWAY on. c may be
// insecure.NewCredentials(), credentials.NewTLS (TLS or mTLS) or any other
// TransportCredentials whose connection carries HTTP/2 frames after the
// handshake. Pass the result to grpc.Creds:
//
//	srv := grpc.NewServer(grpc.Creds(t.WrapCredentials(tlsCreds)))
//
// grpc.Creds keeps only the last value set, so wrap the credentials you
// would have passed yourself; the grpcmgmt Manager does this with the
// credentials given to grpcmgmt.WithCredentials.
func (t *Tracker) WrapCredentials(c credentials.TransportCredentials) credentials.TransportCredentials {
	return &wrappedCreds{TransportCredentials: c, t: t}
}

// wrappedCreds delegates everything to the inner credentials and wraps the
// connection of a server handshake. ClientHandshake, Info and
// OverrideServerName are the inner ones.
type wrappedCreds struct {
	credentials.TransportCredentials
	t *Tracker
}

func (w *wrappedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, ai, err := w.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	return w.t.track(nc), ai, nil
}

func (w *wrappedCreds) Clone() credentials.TransportCredentials {
	return &wrappedCreds{TransportCredentials: w.TransportCredentials.Clone(), t: w.t}
}
