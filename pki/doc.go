// Package pki makes and loads the certificates that secure a netraid
// volume: a certificate authority per volume, a certificate per node (the
// NBD export and both ends of the replication link) and per client (NBD
// clients such as nbdinfo, qemu and nbdfuse).
//
// Directories hold PEM files in the layout libnbd, qemu and nbdkit read:
//
//	CA directory       ca-cert.pem, ca-key.pem, issued/, [ca-crl.pem]
//	node directory     ca-cert.pem, server-cert.pem, server-key.pem, [ca-crl.pem]
//	client directory   ca-cert.pem, client-cert.pem, client-key.pem, [ca-crl.pem]
//
// Invariants:
//   - Keys are ECDSA P-256 in PKCS#8, written 0600 into directories made
//     0700; a file is written whole (a temporary file renamed into place)
//     and never overwritten unless asked to.
//   - Every certificate names its volume, its role and its holder in one
//     URI SAN, netraid://volume/VOLUME/node/NAME or
//     netraid://volume/VOLUME/client/NAME. The volume, not the host name,
//     is what a peer is checked against: a certificate of another volume is
//     refused even when the same CA signed it.
//   - Node certificates serve both TLS roles (server and client
//     authentication): a node accepts its primary and dials its secondary
//     with the same identity. Client certificates only authenticate
//     clients, so a client's key can never stand in for a node.
//   - Every configuration is TLS 1.3 only and requires a certificate from
//     the other side, verified against the directory's ca-cert.pem.
//   - The export takes client certificates only, unless told to take
//     node certificates too (ServerOptions.AllowNodeClients).
//   - Revocation: a CA directory keeps a copy of every certificate it
//     issued (issued/), and 'certs revoke' writes ca-crl.pem there, a CRL
//     signed by the CA that only ever grows. A node or client directory
//     holding a copy refuses what it lists, on every new connection, read
//     again when the file changes; a list that cannot be read or that
//     another CA signed refuses every certificate until it is fixed, and
//     a configuration whose own certificate is revoked does not load.
package pki
