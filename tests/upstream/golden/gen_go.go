// Golden placement vectors made by Go libraries from Debian:
//
//	go run gen_go.go modula KEYS OUT   gomemcache's ServerList.PickServer
//	go run gen_go.go jump KEYS OUT     cespare/xxhash + the published jump
//	                                   consistent hash, as dskit's
//	                                   MemcachedJumpHashSelector combines them
//
// Build offline against Debian's packaged sources (see README.md):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run gen_go.go ...
//
// KEYS is keys.txt (hex, one key a line). The output format is README.md's;
// strata's code plays no part.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/cespare/xxhash"
)

// A modula server is "host:port" or "host:port:weight"; gomemcache has no
// weights, but a server listed w times gets w shares, so a weight is passed
// to it as w consecutive listings.
var modulaCases = []struct {
	name    string
	servers []string
}{
	{"one", []string{"127.0.1.1:11211"}},
	{"two", []string{"127.0.1.1:11211", "127.0.1.2:22122"}},
	{"three", []string{"127.0.1.1:11212", "127.0.1.1:11213", "127.0.1.1:11214"}},
	{"five", []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.10:11211", "10.0.0.3:9000",
		"[::1]:11211"}},
	{"three-weighted", []string{"127.0.1.1:11211:2", "127.0.1.2:11211", "127.0.1.3:11211:3"}},
}

// dskit sorts the addresses in natural order before numbering the buckets.
// Debian has no natural-sort package, so each case also lists its servers in
// that order, written by hand (README.md defines the order); servers is the
// order of the configuration.
var jumpCases = []struct {
	name    string
	servers []string
	natural []string
}{
	{"one", []string{"127.0.1.1:11211"}, []string{"127.0.1.1:11211"}},
	{"two", []string{"127.0.1.1:11211", "127.0.1.1:9000"},
		[]string{"127.0.1.1:9000", "127.0.1.1:11211"}},
	{"three", []string{"10.0.0.10:11211", "10.0.0.2:11211", "10.0.0.9:11211"},
		[]string{"10.0.0.2:11211", "10.0.0.9:11211", "10.0.0.10:11211"}},
	{"five", []string{"memcached-10.memcached:11211", "memcached-2.memcached:11211",
		"memcached-0.memcached:11211", "memcached-1.memcached:11211",
		"memcached-3.memcached:11211"},
		[]string{"memcached-0.memcached:11211", "memcached-1.memcached:11211",
			"memcached-2.memcached:11211", "memcached-3.memcached:11211",
			"memcached-10.memcached:11211"}},
	{"five-ports", []string{"127.0.1.1:11211", "127.0.1.1:9000", "127.0.1.1:22122",
		"127.0.1.1:100", "127.0.1.2:11211"},
		[]string{"127.0.1.1:100", "127.0.1.1:9000", "127.0.1.1:11211", "127.0.1.1:22122",
			"127.0.1.2:11211"}},
}

// jumpHash is the algorithm of Lamping and Veach, "A Fast, Minimal Memory,
// Consistent Hash Algorithm" (2014), figure 1, in Go's integer and float64
// arithmetic, as dskit's cache/jump_hash.go states it.
func jumpHash(key uint64, numBuckets int) int32 {
	var b int64 = -1
	var j int64
	for j < int64(numBuckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int32(b)
}

type vcase struct {
	name, distribution string
	servers            []string
	keys               [][]byte
	picks              []int
}

func readKeys(path string) [][]byte {
	f, err := os.Open(path)
	check(err)
	defer f.Close()
	var keys [][]byte
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, err := hex.DecodeString(strings.TrimSpace(s.Text()))
		check(err)
		keys = append(keys, k)
	}
	check(s.Err())
	return keys
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen_go:", err)
		os.Exit(1)
	}
}

func version(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	check(err)
	return string(out)
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	check(fmt.Errorf("%q not in %v", s, list))
	return -1
}

func modula(keys [][]byte) []vcase {
	var out []vcase
	for _, c := range modulaCases {
		var listed []string // what gomemcache is given
		var owner []int     // listing -> index into c.servers
		for i, s := range c.servers {
			addr, weight := s, 1
			// "host:port:weight", "[v6]:port:weight": two colons after any "]".
			if strings.Count(s[strings.LastIndex(s, "]")+1:], ":") == 2 {
				cut := strings.LastIndex(s, ":")
				w, err := strconv.Atoi(s[cut+1:])
				check(err)
				addr, weight = s[:cut], w
			}
			for n := 0; n < weight; n++ {
				listed = append(listed, addr)
				owner = append(owner, i)
			}
		}
		var sl memcache.ServerList
		check(sl.SetServers(listed...))
		var addrs []string
		check(sl.Each(func(a net.Addr) error {
			addrs = append(addrs, a.String())
			return nil
		}))
		vc := vcase{name: c.name, distribution: "modula", servers: c.servers, keys: keys}
		for _, k := range keys {
			a, err := sl.PickServer(string(k))
			check(err)
			// Listings of one address are consecutive, so the first match is right.
			vc.picks = append(vc.picks, owner[indexOf(addrs, a.String())])
		}
		out = append(out, vc)
	}
	return out
}

func jump(keys [][]byte) []vcase {
	var out []vcase
	for _, c := range jumpCases {
		if len(c.natural) != len(c.servers) {
			check(fmt.Errorf("case %s: natural order is not a permutation", c.name))
		}
		vc := vcase{name: c.name, distribution: "jump", servers: c.servers, keys: keys}
		for _, k := range keys {
			// dskit: one server takes every key; otherwise jump over the
			// naturally sorted list.
			bucket := 0
			if len(c.natural) > 1 {
				bucket = int(jumpHash(xxhash.Sum64String(string(k)), len(c.natural)))
			}
			vc.picks = append(vc.picks, indexOf(c.servers, c.natural[bucket]))
		}
		out = append(out, vc)
	}
	return out
}

func main() {
	if len(os.Args) != 4 || (os.Args[1] != "modula" && os.Args[1] != "jump") {
		fmt.Fprintln(os.Stderr, "usage: gen_go.go modula|jump KEYS OUT")
		os.Exit(2)
	}
	keys := readKeys(os.Args[2])
	var cases []vcase
	var header []string
	if os.Args[1] == "modula" {
		cases = modula(keys)
		header = []string{"generator: tests/upstream/golden/gen_go.go modula",
			"library: golang-github-bradfitz-gomemcache-dev " +
				version("golang-github-bradfitz-gomemcache-dev"),
			"memcache.ServerList.SetServers(servers; weight w = listed w times).PickServer(key)"}
	} else {
		cases = jump(keys)
		header = []string{"generator: tests/upstream/golden/gen_go.go jump",
			"library: golang-github-cespare-xxhash-dev " +
				version("golang-github-cespare-xxhash-dev"),
			"jumpHash(xxhash.Sum64String(key), n) over the servers in natural order",
			"(dskit's MemcachedJumpHashSelector); n == 1 picks the one server"}
	}
	f, err := os.Create(os.Args[3])
	check(err)
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "# Golden placement vectors: do not edit, regenerate (README.md).")
	for _, h := range header {
		fmt.Fprintln(w, "# "+h)
	}
	for _, c := range cases {
		fmt.Fprintf(w, "case %s\ndistribution %s\n", c.name, c.distribution)
		for _, s := range c.servers {
			fmt.Fprintf(w, "server %s\n", s)
		}
		for i, k := range c.keys {
			fmt.Fprintf(w, "key %s %d\n", hex.EncodeToString(k), c.picks[i])
		}
		fmt.Fprintln(w, "end")
	}
	check(w.Flush())
	check(f.Close())
}
