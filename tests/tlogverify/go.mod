module veilwatch.test/tlogverify

go 1.19

require golang.org/x/mod v0.0.0

// Offline: Debian's golang-golang-x-mod-dev package (build with GOFLAGS=-mod=mod GOPROXY=off).
replace golang.org/x/mod => /usr/share/gocode/src/golang.org/x/mod
