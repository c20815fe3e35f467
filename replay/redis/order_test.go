package redis

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
)

// A monitor records the commands a Redis server runs, with MONITOR.
type monitor struct {
	mu    sync.Mutex
	lines []string
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR = %q, %v", line, err)
	}
	m := &monitor{}
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			m.mu.Lock()
			m.lines = append(m.lines, strings.TrimSpace(line))
			m.mu.Unlock()
		}
	}()
	return m
}

// commands returns the commands recorded, each as the client that sent it
// and its words, in the order the server ran them.
func (m *monitor) commands() (clients []string, cmds [][]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, line := range m.lines {
		// +1700000000.000000 [0 127.0.0.1:50000] "SET" "k" "1" ...
		_, rest, ok := strings.Cut(line, "[")
		if !ok {
			continue
		}
		client, rest, _ := strings.Cut(rest, "] ")
		_, addr, _ := strings.Cut(client, " ")
		var words []string
		for _, w := range strings.Split(rest, "\" \"") {
			words = append(words, strings.Trim(w, "\""))
		}
		clients = append(clients, addr)
		cmds = append(cmds, words)
	}
	return clients, cmds
}

// checkOrder checks what the guarantee against losses rests on (see
// Remember): the pair is set before its sentinel is read, by SET NX GET,
// on one connection with nothing of its own between them, and, in a
// cluster, within one MULTI and EXEC. A store that read the sentinel
// first, or sent the commands apart, fails it.
func checkOrder(t *testing.T, mons []*monitor, s *Store, nonce string, cluster bool) {
	t.Helper()
	key, tag := s.key("sk_1", nonce)
	sentinel := s.sentinels[tag]
	want := []string{"SET " + key, "SET " + sentinel}
	if cluster {
		want = append(append([]string{"MULTI"}, want...), "EXEC")
	}
	testtime.Eventually(t, 5*time.Second, func() error {
		for _, m := range mons {
			clients, cmds := m.commands()
			first := -1
			for i, c := range cmds {
				if len(c) > 1 && (c[1] == key || c[1] == sentinel) {
					first = i
					break
				}
			}
			if first < 0 {
				continue
			}
			// The commands of that connection, from the one before the
			// first naming a key of the call.
			var got []string
			var sentinelCmd []string
			for i := max(first-1, 0); i < len(cmds); i++ {
				if clients[i] != clients[first] {
					continue
				}
				c := cmds[i]
				if i < first && c[0] != "MULTI" {
					continue
				}
				if len(c) > 1 {
					got = append(got, c[0]+" "+c[1])
				} else {
					got = append(got, c[0])
				}
				if len(c) > 1 && c[1] == sentinel {
					sentinelCmd = c
				}
				if len(got) == len(want) {
					break
				}
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				return errors.New("commands of the call's connection: " + strings.Join(got, ", ") + "; want " + strings.Join(want, ", "))
			}
			if !contains(sentinelCmd, "NX") || !contains(sentinelCmd, "GET") {
				return errors.New("the sentinel's command is " + strings.Join(sentinelCmd, " ") + ", want SET NX GET")
			}
			return nil
		}
		return errors.New("no server ran a command on the call's keys")
	})
}

func contains(words []string, w string) bool {
	for _, x := range words {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}

func TestCommandOrder(t *testing.T) {
	r := testenv.StartRedis(t)
	s := newTestStore(t, r.URL(), Options{KeyPrefix: "p:"})
	m := startMonitor(t, r.Addr())
	now := time.Now()
	if err := s.Remember(context.Background(), "sk_1", "n-1", now, now.Add(time.Minute)); err != nil {
		t.Fatalf("Remember = %v", err)
	}
	checkOrder(t, []*monitor{m}, s, "n-1", false)
}

func TestClusterCommandOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	s := newTestStore(t, c.URL(), Options{KeyPrefix: "p:"})
	var mons []*monitor
	for _, n := range c.Nodes {
		mons = append(mons, startMonitor(t, n.Addr()))
	}
	now := time.Now()
	for _, nonce := range []string{"n-1", "n-2", "n-3"} {
		if err := s.Remember(context.Background(), "sk_1", nonce, now, now.Add(time.Minute)); err != nil {
			t.Fatalf("Remember = %v", err)
		}
		checkOrder(t, mons, s, nonce, true)
		if err := s.Remember(context.Background(), "sk_1", nonce, now, now.Add(time.Minute)); !errors.Is(err, httpsig.ErrReplayed) {
			t.Fatalf("replay: Remember = %v, want ErrReplayed", err)
		}
	}
}
