#!/usr/bin/env bash
# Creates what remote (TCP + mutual TLS) use of vesseld needs:
#   DIR/ca.pem, ca.key           the CA both sides trust
#   DIR/server.pem, server.key   vesseld's certificate (--tls-cert/--tls-key)
#   DIR/client.pem, client.key   a client certificate
# usage: vessel-certs.sh DIR [HOSTNAME-OR-IP ...]
#   names the server certificate is valid for; localhost, 127.0.0.1 and ::1
#   are always included. Run it again with a new DIR for another CA.
# Then:  vesseld --listen tcp://0.0.0.0:7443 --tls-cert DIR/server.pem \
#          --tls-key DIR/server.key --tls-client-ca DIR/ca.pem
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
umask 077
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in "$@"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done
days=825
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=vessel CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
issue() {  # name cn extensions
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -sha256 -days $days -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server vesseld "subjectAltName=$san
extendedKeyUsage=serverAuth"
issue client vessel-client "extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 644 ca.pem server.pem client.pem
echo "wrote $(pwd)/{ca,server,client}.{pem,key}"
