// Command exoscale-emulator serves a local Exoscale IAM API for tests, the
// demo and CI pipelines. Its first line of stdout is the endpoint and the
// unrestricted root credential as JSON.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/exokey/exokey/internal/emulator"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "exoscale-emulator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen       = flag.String("listen", "127.0.0.1:8080", "address to listen on (use 127.0.0.1: the egoscale v2 client only keeps an IP host)")
		stateFile    = flag.String("state", "", "file that persists keys, roles and operations across restarts")
		rootKey      = flag.String("root-key", "", "the unrestricted root key (generated when empty)")
		rootSecret   = flag.String("root-secret", "", "the root key's secret")
		pendingPolls = flag.Int("pending-polls", 0, "how many polls an async operation answers pending")
		quiet        = flag.Bool("quiet", false, "do not log one line per request")
		faults       emulator.Faults
	)
	flag.IntVar(&faults.LatencyMS, "latency-ms", 0, "delay every /v2 call by this many milliseconds")
	flag.IntVar(&faults.JitterMS, "jitter-ms", 0, "plus up to this many milliseconds")
	flag.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of /v2 calls answered 503")
	flag.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of /v2 calls answered 429")
	flag.IntVar(&faults.RetryAfterSeconds, "retry-after", 1, "Retry-After seconds of a 429")
	flag.Float64Var(&faults.LoseResponseRate, "lose-response-rate", 0, "fraction of mutating /v2 calls applied and then answered 504")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *quiet {
		logger = slog.New(slog.DiscardHandler)
	}
	server, err := emulator.New(emulator.Options{
		RootKey: *rootKey, RootSecret: *rootSecret, StateFile: *stateFile,
		PendingPolls: *pendingPolls, Faults: faults, Logger: logger,
	})
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	key, secret := server.Root()
	banner, _ := json.Marshal(map[string]string{
		"endpoint": "http://" + listener.Addr().String() + "/v2", "key": key, "secret": secret,
	})
	fmt.Println(string(banner))

	httpServer := &http.Server{Handler: server, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdown)
	}()
	logger.Info("serving the Exoscale IAM API", "endpoint", "http://"+listener.Addr().String()+"/v2", "key", key)
	if err := httpServer.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
