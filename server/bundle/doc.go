// Package bundle takes the policy (the YAML policy document and the user's
// Rego modules) from an OPA bundle, with OPA's own bundle format, signature
// verification and downloader.
//
// # Layout
//
// A bundle carries:
//
//   - the policy document as bundle data at mcp_secure.policy: the file
//     mcp_secure/policy/data.yaml (or data.json) in the bundle. `opa build`
//     makes it from a directory holding mcp_secure/policy/data.yaml; the
//     document is the policy file's content (version, network, ...), with
//     no rego.modules key (the modules are the bundle's own);
//   - the user's Rego modules: every .rego file of the bundle, checked
//     exactly as rego.modules of a policy file (tighten-only);
//   - a .manifest whose revision names the policy in every audit record;
//   - a .signatures.json (`opa build --signing-key … --verification-key …`
//     or `opa sign`), required for a bundle service.
//
// Any other data, and wasm or plan modules, are refused: nothing else of
// the bundle would be used, so it is an error rather than a surprise.
//
// # Sources
//
// A local bundle (a .tar.gz file or a directory) is read once with OPA's
// bundle reader. A bundle service is polled by OPA's download package
// (ETag, If-None-Match, long polling, backoff) through OPA's REST client,
// configured with OPA's service settings (url, bearer credentials). An
// OCI registry (oci://host/repository:tag or @digest; oci+http:// for a
// registry without TLS) is polled by OPA's OCI downloader (service type
// oci): the bundle is the manifest's application/vnd.oci.image.layer.v1.tar+gzip
// layer, its digest is the ETag, a tag that has not moved downloads
// nothing, and there is no long polling. OPA sends the token to a
// registry base64-encoded: scheme Basic with a user:password token is
// HTTP basic authentication. The pulled blobs live in a directory of
// StateDir that Stop removes. Each
// downloaded bundle is verified by OPA (the key id is pinned), then by the
// caller's Check (policy loading and the engine build), and only then
// becomes Current, the bundle the server is to apply. Once the server has
// it in force (it started with it, or a reload applied it: Activated), it
// is the last good bundle, persisted (0600, in a 0700 directory) with its
// ETag so a restart without the service still starts on it, and the
// rollback floor; a bundle a reload cannot apply (it needs a restart) is
// neither. A failed, unsigned, badly signed or refused download keeps the
// bundle in force; a persisted copy is verified again when it is read. Each refused
// bundle is handed to Options.OnRefuse (the server audits it); a service
// that fails to answer is not a refusal.
//
// A location without TLS (http://, oci+http://) is refused unless its
// host is loopback ([CheckTransport]): the signature keeps the content
// honest, but not the token sent in the clear, nor an older signed
// bundle replayed or new ones held back by whoever is on the path.
//
// # Rollback protection
//
// OPA accepts any validly signed bundle, also an older one: a service,
// or whoever can replay its old answers, could take the policy back.
// With Config.RevisionOrder a downloaded bundle older than the last
// activated one is refused: by manifest revision (natural or lexical
// order; the manifest is covered by the signature) or by the iat claim
// of the signature. The last activated revision and iat are persisted in
// StateDir (bundle.floor.json) and hold across restarts.
package bundle
