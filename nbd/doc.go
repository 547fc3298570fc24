// Package nbd speaks the Network Block Device protocol (fixed newstyle
// handshake, simple and structured replies, base:allocation block
// status): a Server that exports any blockdev.Device, and a pipelined
// Client that is itself a blockdev.Device, used as the remote leg of a
// mirror.
//
// Layout: proto.go and optcodec.go are the wire format, negotiate_*.go the
// handshakes, tls.go STARTTLS on both sides, tlsconn.go the TLS data
// path (records gathered per message, reads ahead), serve.go the server's
// transmission loop, commands.go and reply.go what it does per request,
// lifecycle.go accepting and shutting down, admission.go who gets in,
// budget.go the memory budget, conninfo.go what the owner sees of each
// connection, client*.go the client, netraid.go the netraid extension.
//
// Server invariants:
//   - A request is checked (command, flags, range, size, export mode)
//     before any allocation or I/O; a bad one gets an error reply and the
//     connection goes on. Only a broken stream (bad request magic, a
//     payload cut short by a disconnect) ends it, and a write whose payload
//     did not arrive whole is never applied.
//   - A WRITE larger than MaxRequest is refused with EINVAL after its
//     payload is read and discarded through a fixed buffer, never stored,
//     so the stream stays in step; the same holds for refused control
//     requests and for writes to a read-only export.
//   - One reader per connection; at most MaxInflight requests and
//     MaxInflightBytes of buffers per connection, and MemoryBudget for all
//     connections together; when full, the reader stops reading (the
//     request waits, it does not fail), so no client can make the server
//     allocate without bound. Replies go out whole, one at a time, in
//     completion order.
//   - Memory budget (budget.go): each connection in transmission has a
//     reserve, MemoryBudget/2/MaxConnections, that it fills without
//     waiting for any other: a client that never reads its replies
//     cannot stop another's requests that fit in a reserve. Beyond it,
//     requests borrow from the other half, lent to the connections that
//     borrow least first; what another connection holds comes back when
//     its device calls return and its replies are taken, or when
//     ReplyTimeout or PayloadTimeout cuts it. A write's buffer is given
//     back before its reply is sent.
//   - Errors become reply values in exactly one place, errnoOf.
//   - A reply is sent only after the device call returned: FUA writes after
//     the data is durable, FLUSH after every write acknowledged before it
//     is. Flush is device-wide, so CAN_MULTI_CONN is always advertised.
//   - A connection that acknowledged writes and did not flush them
//     flushes its export when it ends, however it ends.
//   - On TLS (both sides), a message — reply, request or option — is
//     sealed in as few records as its size allows, and its records go
//     out together in writes of up to 512 KiB, under the same write lock
//     and deadline as on a socket; a failure to send them fails the
//     connection as a failed write does.
//   - TLS: a TLSRequired server answers every option but STARTTLS and
//     ABORT with NBD_REP_ERR_TLS_REQD (EXPORT_NAME ends the connection),
//     so nothing about its exports is told in plaintext. After STARTTLS
//     the negotiation starts over with no state from before, and bytes
//     sent between STARTTLS and the TLS handshake end the connection.
//   - HelloFirst: until a netraid hello is accepted on the connection
//     (again after STARTTLS), every option but STARTTLS, ABORT and the
//     hello is refused with NBD_REP_ERR_POLICY and a text that names
//     nothing (EXPORT_NAME ends the connection).
//   - Every connection has a ConnInfo (an ID unique in the server, its
//     addresses, its TLS state, its export); the contexts of the Hello,
//     Control and Attach hooks carry it. A connection opened on an export
//     with Attach is served by the device Attach returned for it alone,
//     never by another's; the server closes no such device.
//   - Admission (admission.go): at most MaxHandshakes connections in
//     their handshake and MaxConnections in transmission; no connection
//     is ever refused on arrival, and none has an idle time-out unless
//     IdleTimeout is set. A new connection, when MaxHandshakes are open,
//     displaces the handshake the server heard from least recently (the
//     order of accept, client flags and options). What this promises a
//     client during a flood of connections: it is displaced only once
//     MaxHandshakes connections arrived since the server last heard from
//     it, so a client that sends each message of its handshake before
//     that many newer connections arrive gets through; one slower than
//     the flood may be cut and must reconnect; and the flood never
//     closes a connection in transmission. A client that opens an export
//     when MaxConnections are in transmission displaces the connection
//     idle longest (nothing in flight) of the client holding the most
//     (its certificate, else its address, the newcomer counted), and is
//     answered once that connection is gone; if every one is busy, the
//     open is refused with NBD_REP_ERR_POLICY. Under TLS, a certificate
//     beyond MaxConnectionsPerCert displaces its own idle longest, or is
//     refused.
//   - Bounded resources: the handshake within NegotiationTimeout, a
//     request's payload within PayloadTimeout, a reply taken within
//     ReplyTimeout. The buffers of request payloads and READ replies stay
//     within MemoryBudget (as blockdev's pool sizes them; control and
//     block status replies are small or bounded apart), plus a 64 KiB
//     read buffer (and TLS's) per connection; a TLS connection also borrows a 512 KiB
//     buffer from a pool while it sends a reply of more than a record,
//     and another while records stream in.
//   - Shutdown and a cancelled Serve context drain: requests received
//     finish and are answered, later ones get ESHUTDOWN, then exports are
//     flushed and connections closed. The server never closes a device.
//
// Client invariants:
//   - With ClientOptions.TLS, STARTTLS is the first option; a server that
//     refuses it, or a certificate either side refuses, fails the
//     handshake with ErrTLS: no fallback to plaintext.
//   - Requests are checked locally (range, minimum block size, read-only)
//     and split at the server's maximum block size; the pieces are in
//     flight together, at most MaxInflight requests in all.
//   - One reader goroutine owns every reply buffer until it completes the
//     call; a caller's buffer is never touched after its call returns.
//   - A request without a reply within Timeout, a failed send or receive,
//     or any reply the protocol forbids breaks the client for good: every
//     pending and later call fails with ErrBroken and the cause. A server
//     that answers ESHUTDOWN gets no new requests, and a NBD_CMD_DISC once
//     the pending ones are answered.
//
// The netraid extension, between two netraid nodes: the client sends
// OptNetraidHello first after STARTTLS, before NBD_OPT_GO (data: 32-bit export name length, the
// name, the hello bytes); the server answers through ServerOptions.Hello
// with a RepNetraidHello reply carrying its response, or refuses with
// NBD_REP_ERR_POLICY and the error's text, or, when the hook's error is a
// *HelloRefusal, with RepErrNetraidRefused: the text and the refusal's
// data (a HelloError with Data on the client).
// On connections that did the hello, CmdNetraidControl carries a payload
// like WRITE and is answered by a simple reply header, a 32-bit length
// and the response. A request starting with 'C' followed by a 64-bit
// offset and length asks the server for the blockdev.Checksum of that
// range (Client.Checksum); others go to ServerOptions.Control.
package nbd
