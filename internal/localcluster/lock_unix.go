//go:build unix

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

package localcluster

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// lockFile takes an exclusive lock on path (made if missing) that goes with the process however it
// ends, and returns what the file holds (the previous holder's record, for the caller to keep or
// replace); when another process holds it, it fails with busy, what the file says of the holder
// and the reason. Closing the file returned releases the lock.
func lockFile(path, busy string) (*os.File, []byte, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		return nil, nil, fmt.Errorf("%s (%s); stop it first: %w", busy, strings.TrimSpace(string(holder)), err)
	}
	previous, err := os.ReadFile(path)
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, previous, nil
}
