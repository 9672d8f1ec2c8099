// Command netpollorder shows the order in which a saturated Go server
// starts requests that arrived while its only P was busy: it runs a server
// (GOMAXPROCS=1) and, as a second process, a client that keeps the
// server's P busy for 9 ms with one request and meanwhile sends one
// request on each of 16 idle connections, 0.1 ms apart (the client spins
// between them: a sleep that short takes about a millisecond). The server
// prints the order in which their handlers started, for each of eleven
// rounds; the first warms the connections up and is labelled so.
//
//	go build -o /tmp/npo ./netpollorder
//	GOMAXPROCS=1 taskset -c 1 /tmp/npo -serve & sleep 0.5
//	taskset -c 0 /tmp/npo; kill %1
//
// On Linux with Go 1.26 (5 Dec 2026) eight of the ten rounds after the
// warm-up printed [15 14 13 … 1 0], the reverse of the arrival order: all
// sixteen arrived during one busy spell and were started by one poll (the
// other two: two such batches, each reversed). The runtime's network
// poller pushes each goroutine it wakes onto the head of a list
// (runtime.netpollready) and runs them from there, so the last request of
// a poll's batch starts first. That is why resilience.QueueDelay's minimum
// wait reads a standing queue low on a busy one-P Go server (see its doc
// and BENCHMARKS.md, "Overload").
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18777", "server address")
	serve := flag.Bool("serve", false, "run the server (else the client)")
	flag.Parse()
	if *serve {
		log.Fatal(server(*addr))
	}
	if err := client(*addr); err != nil {
		log.Fatal(err)
	}
}

// spin keeps the P busy for d without blocking.
func spin(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
}

// server records the order of the requests ?i=0… and prints it on ?i=-2;
// ?i=-1 is the request that keeps the P busy.
func server(addr string) error {
	var mu sync.Mutex
	var order []int
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Query().Get("i"))
		switch {
		case i >= 0:
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			spin(200 * time.Microsecond)
		case i == -1:
			spin(9 * time.Millisecond) // under the runtime's 10 ms preemption
		case i == -2:
			mu.Lock()
			fmt.Println(r.URL.Query().Get("round"), "start order:", order)
			order = nil
			mu.Unlock()
		}
	}))
}

func client(addr string) error {
	conns := make([]net.Conn, 16)
	for k := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[k] = c
	}
	for round := range 11 {
		busy, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(busy, "GET /?i=-1 HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(3 * time.Millisecond)
		for k, c := range conns {
			fmt.Fprintf(c, "GET /?i=%d HTTP/1.1\r\nHost: x\r\n\r\n", k)
			spin(100 * time.Microsecond)
		}
		time.Sleep(100 * time.Millisecond)
		busy.Close()
		label := "round " + strconv.Itoa(round)
		if round == 0 {
			label = "warm-up"
		}
		resp, err := http.Get("http://" + addr + "/?i=-2&round=" + url.QueryEscape(label))
		if err != nil {
			return err
		}
		resp.Body.Close()
	}
	return nil
}
