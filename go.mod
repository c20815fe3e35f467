module github.com/signet-dev/signet

go 1.26.8

require (
	github.com/redis/rueidis v1.0.79
	github.com/rogpeppe/go-internal v1.16.0
)

require (
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
)
