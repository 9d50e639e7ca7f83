// Command gitserver serves the Git repositories under a folder over Git's smart HTTP protocol on
// loopback, for Flux's source-controller in the e2e suite: `git http-backend` behind Go's CGI
// handler, read-only (pushes go to the folder directly).
//
//	gitserver --root DIR        prints "listening on 127.0.0.1:PORT", serves until killed
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
)

func main() {
	root := flag.String("root", ".", "folder holding the bare repositories (<name>.git)")
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	git, err := exec.LookPath("git")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitserver: needs git:", err)
		os.Exit(1)
	}
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitserver:", err)
		os.Exit(1)
	}
	handler := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + *root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	if err := http.Serve(listener, handler); err != nil {
		fmt.Fprintln(os.Stderr, "gitserver:", err)
		os.Exit(1)
	}
}
