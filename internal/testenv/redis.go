package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A RedisServer is a redis-server of a test's own, on a free port of
// 127.0.0.1, in a temporary directory: one that the test may kill, restart,
// flush or hang, unlike the shared server. It is killed at the end of the
// test.
type RedisServer struct {
	tb   testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server with args after its port, its directory
// and no snapshots, and waits until it answers. Without redis-server the
// test skips, unless CI=true, when it fails.
func StartRedis(tb testing.TB, args ...string) *RedisServer {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(tb, "redis-server", "$PATH", err)
	}
	r := &RedisServer{tb: tb, port: FreePort(tb), dir: tb.TempDir(), args: args}
	r.start()
	tb.Cleanup(r.Kill)
	return r
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Port is the server's port.
func (r *RedisServer) Port() int { return r.port }

// Addr is the server's "host:port".
func (r *RedisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the server's redis:// URL.
func (r *RedisServer) URL() string { return "redis://" + r.Addr() }

// start starts the server, with the data its directory holds, and waits
// until it answers.
func (r *RedisServer) start() {
	r.tb.Helper()
	args := append([]string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--daemonize", "no", "--logfile", "",
	}, r.args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.tb.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.ping()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("redis-server on %s does not answer: %v", r.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *RedisServer) ping() error {
	c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Kill stops the server as a crash would: SIGKILL, no shutdown. It does
// nothing to a server that is not running.
func (r *RedisServer) Kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// Restart kills the server and starts it again on the same port and
// directory: it comes back with what it persisted, if anything.
func (r *RedisServer) Restart() {
	r.tb.Helper()
	r.Kill()
	r.start()
}

// Hang stops the server with SIGSTOP, as a server that hangs (swapping, a
// stuck disk) would: its connections stay open and nothing answers.
// Resume lets it go on; a hung server is still killed at the end of the
// test.
func (r *RedisServer) Hang() {
	r.tb.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.tb.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Resume continues a server that Hang stopped.
func (r *RedisServer) Resume() {
	r.tb.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		r.tb.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// A RedisCluster is a Redis Cluster of three masters, without replicas,
// each a [RedisServer] of the test's own.
type RedisCluster struct {
	tb    testing.TB
	Nodes []*RedisServer
}

// StartRedisCluster starts three servers in cluster mode, joins them with
// redis-cli --cluster create, and waits until every node says the cluster
// is up. The servers keep no data on disk, so a node that restarts comes
// back with its slots empty.
func StartRedisCluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	c := &RedisCluster{tb: tb}
	var addrs []string
	for range 3 {
		// The cluster bus port is the client port plus 10,000 unless set,
		// which is past 65,535 for much of the ephemeral range.
		n := StartRedis(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(FreePort(tb)),
			"--cluster-node-timeout", "1000", "--appendonly", "no")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr())
	}
	cmd := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// URL names every node, as a gateway's --redis does for a cluster: any one
// would do, but a gateway must start while one is down.
func (c *RedisCluster) URL() string {
	return c.Nodes[0].URL() + "?addr=" + c.Nodes[1].Addr() + "&addr=" + c.Nodes[2].Addr()
}

// WaitOK waits until every node says the cluster is up, as after a node
// restarted.
func (c *RedisCluster) WaitOK() {
	c.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		for {
			out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(n.port), "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.tb.Fatalf("cluster not up on %s: %v\n%s", n.Addr(), err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
