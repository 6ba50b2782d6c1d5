#!/bin/sh
# Regenerates the TLS test fixtures of this folder (tests/cli/tls.rs, runtime/src/net/tls.rs):
# two CAs, a server certificate for localhost and 127.0.0.1 signed by the first, a client
# certificate signed by each. P-256 keys, 100 years of validity. Test keys only: never use them.
set -eu
cd "$(dirname "$0")"
days=36500
ca() { # name subject
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
        -subj "/CN=$2" -keyout "$1.key" -out "$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name subject ca extensions
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
        -keyout "$1.key" -out "$1.csr"
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days $days \
        -extfile "$1.ext" -out "$1.pem"
    rm "$1.csr" "$1.ext"
}
ca ca "ciphergpt test CA"
ca other-ca "another test CA"
leaf server "localhost" ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client "ciphergpt test client" ca "extendedKeyUsage=clientAuth"
leaf other-client "another test client" other-ca "extendedKeyUsage=clientAuth"
rm -f ./*.srl
