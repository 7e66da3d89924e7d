#!/usr/bin/env bash
# The PKI walkthrough behind `make demo` (until the full demo lands): build the seed's
# chain of trust with mtlskit, then prove it with a real mTLS handshake between
# `openssl s_server` (requires a client certificate) and `curl` on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
M=.venv/bin/mtlskit
D=.demo
rm -rf "$D" && mkdir -p "$D/certs"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. a root CA and an issuing intermediate CA"
$M ca init --dir "$D/ca" --name "Demo Root CA"

say "2. a server certificate (serverAuth) and a client certificate (clientAuth)"
$M ca issue server localhost --dir "$D/ca" --san localhost --san 127.0.0.1 --out "$D/certs"
$M ca issue client alice --dir "$D/ca" --san spiffe://demo.local/ns/default/sa/alice --out "$D/certs"

say "3. what the client sends: its chain (leaf + intermediate, never the root)"
$M cert inspect "$D/certs/alice.chain.pem"

say "4. openssl agrees on the profiles"
openssl verify -CAfile "$D/ca/root.crt" -untrusted "$D/ca/intermediate.crt" -purpose sslserver "$D/certs/localhost.crt"
openssl verify -CAfile "$D/ca/root.crt" -untrusted "$D/ca/intermediate.crt" -purpose sslclient "$D/certs/alice.crt"
if ! openssl verify -CAfile "$D/ca/root.crt" -untrusted "$D/ca/intermediate.crt" -purpose sslserver "$D/certs/alice.crt" >/dev/null 2>&1; then
  echo "alice.crt is rejected as a server certificate, as it should be"
fi

say "5. a real mTLS handshake: openssl s_server (client cert required) <- curl"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl s_server -accept "127.0.0.1:$port" -www -quiet -Verify 2 -verify_return_error \
  -cert "$D/certs/localhost.crt" -cert_chain "$D/ca/intermediate.crt" -key "$D/certs/localhost.key" \
  -CAfile "$D/ca/root.crt" \
  >"$D/s_server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
curl -sS --cacert "$D/ca/root.crt" --cert "$D/certs/alice.chain.pem" --key "$D/certs/alice.key" \
  "https://localhost:$port/" | grep -E '^(New|Protocol|Cipher is)|Protocol  *:|Cipher  *:' | head -3
echo "handshake with alice's certificate: OK"
if ! curl -sS --cacert "$D/ca/root.crt" "https://localhost:$port/" >/dev/null 2>"$D/curl-nocert.err"; then
  echo "without a client certificate the server refuses: $(tail -1 "$D/curl-nocert.err")"
fi

say "6. revoke alice and publish a CRL"
$M ca revoke --cert "$D/certs/alice.crt" --dir "$D/ca" --reason keyCompromise
$M ca crl --dir "$D/ca" --out "$D/ca/crl.pem"
$M ca list --dir "$D/ca"
printf '\nEverything is in %s/. Next: mtlskit --help\n' "$D"
