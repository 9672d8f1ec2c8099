package netem

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestLatencyProxy(t *testing.T) {
	defer goleak.VerifyNone(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					_, _ = c.Write([]byte(line))
				}
			}()
		}
	}()

	p, err := Listen(echo.Addr().String(), 0)
	require.NoError(t, err)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	r := bufio.NewReader(c)
	roundTrip := func() time.Duration {
		t0 := time.Now()
		_, err := c.Write([]byte("ping\n"))
		require.NoError(t, err)
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "ping\n", line)
		return time.Since(t0)
	}
	roundTrip()
	p.SetDelay(50 * time.Millisecond)
	assert.GreaterOrEqual(t, roundTrip(), 100*time.Millisecond, "50 ms each way")

	// Ten lines sent as ten chunks are in flight together: the last echo
	// arrives about one round trip (200 ms) after the first was sent, not
	// ten (≥ 1 s each way if chunks were delayed one after another).
	p.SetDelay(100 * time.Millisecond)
	t0 := time.Now()
	for range 10 {
		_, err := c.Write([]byte("ping\n"))
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond) // separate chunks
	}
	for range 10 {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "ping\n", line)
	}
	took := time.Since(t0)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond)
	assert.Less(t, took, 800*time.Millisecond, "chunks delayed one after another would take ≥ 1 s each way")
	require.NoError(t, p.Close())
	_, err = r.ReadString('\n') // the proxy cut the connection
	assert.Error(t, err)
	c.Close()
}
