//go:build !race

package peek_test

const raceEnabled = false
