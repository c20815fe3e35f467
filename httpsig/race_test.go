//go:build race

package httpsig

const raceEnabled = true
