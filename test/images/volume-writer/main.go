/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command volume-writer is the end-to-end tests' workload on the local cluster's real node: a
// TServer's container that proves its node-local volume is its own. At start it reads the
// records earlier runs left in <dir>/boots, appends its own (its run number, uid, gid and pod),
// and reads the file back; then it serves the file over HTTP until stopped. When it cannot write,
// it says why in its termination message and exits 1, so that the kubelet reports it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "/data", "The volume to write into.")
	listen := flag.String("listen", ":8080", "Where to serve the records (GET /).")
	flag.Parse()
	records, err := record(*dir)
	if err != nil {
		fail(err)
	}
	fmt.Print(records)
	file := filepath.Join(*dir, "boots")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fail(err)
	}
}

// record appends this run's record to dir/boots and returns the file's whole content, read back.
func record(dir string) (string, error) {
	file := filepath.Join(dir, "boots")
	previous, err := countLines(file)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	line := fmt.Sprintf("run %d uid=%d gid=%d pod=%s previous=%d\n",
		previous+1, os.Getuid(), os.Getgid(), host, previous)
	if _, err := f.WriteString(line); err != nil {
		return "", errors.Join(err, f.Close())
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return "", err
	}
	data, err := os.ReadFile(file)
	return string(data), err
}

// countLines is how many records file holds; none when it does not exist.
func countLines(file string) (int, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n, nil
}

// fail reports err where the kubelet reads a container's last words, and exits 1.
func fail(err error) {
	msg := fmt.Sprintf("uid %d gid %d: %v", os.Getuid(), os.Getgid(), err)
	_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644) //nolint:gosec // read by the kubelet
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
