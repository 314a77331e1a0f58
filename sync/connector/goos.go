package connector

import "runtime"

// goos is the OS named at pairing.
const goos = runtime.GOOS
