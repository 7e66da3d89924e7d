"""Tests of `mtlskit ca serve`, `ca token`, `mtlskit renew` and the gateway's [tls] ca_url."""
