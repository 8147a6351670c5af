// A streaming reverse proxy on Go's standard library only: the same-machine stand-in
// for a Go gateway in bench/concurrency.py (Bifrost is Go; its published figures come
// from another machine). Each upstream write is flushed to the client at once.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to listen on")
	upstream := flag.String("upstream", "", "the model server, http://host:port")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("-upstream: %q is not a URL", *upstream)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // flush after every write: a token reaches the client at once
	proxy.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	server := &http.Server{Addr: *listen, Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(server.ListenAndServe())
}
