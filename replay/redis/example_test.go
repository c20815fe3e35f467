package redis_test

import (
	"context"
	"log"
	"time"

	"github.com/signet-dev/signet/replay/redis"
)

func ExampleNew() {
	nonces, err := redis.New("redis://127.0.0.1:6379/0", redis.Options{
		KeyPrefix: "gateway-eu:nonce:",
		Timeout:   100 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer nonces.Close()

	// For the gateway's /healthz: a Redis that does not answer makes every
	// signed request fail with 503, so the instance is not healthy either.
	if err := nonces.Ping(context.Background()); err != nil {
		log.Print(err)
	}
}
