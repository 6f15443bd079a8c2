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

// applyProfile fills faults from a named profile, keeping the values given
// on the command line.
func applyProfile(name string, faults *emulator.Faults) error {
	p, err := emulator.Profile(name)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	keep := func(flagName string, field *int, value int) {
		if !set[flagName] {
			*field = value
		}
	}
	keep("latency-ms", &faults.LatencyMS, p.LatencyMS)
	keep("latency-p99-ms", &faults.LatencyP99MS, p.LatencyP99MS)
	faults.PendingPolls, faults.PendingPollsMax, faults.KeyBurst = p.PendingPolls, p.PendingPollsMax, p.KeyBurst
	if !set["key-rate"] {
		faults.KeyRate = p.KeyRate
	} else {
		faults.KeyBurst = 0 // one second's worth of the given rate
	}
	if !set["throttle-rate"] {
		faults.ThrottleRate = p.ThrottleRate
	}
	faults.RoleLagMS, faults.ThrottleBody, faults.ProblemJSON, faults.LegacyGone = p.RoleLagMS, p.ThrottleBody, p.ProblemJSON, p.LegacyGone
	return nil
}

func run() error {
	var (
		listen       = flag.String("listen", "127.0.0.1:8080", "address to listen on (use 127.0.0.1: the egoscale v2 client only keeps an IP host)")
		sosListen    = flag.String("sos-listen", "127.0.0.1:0", "address of the SOS (S3) endpoint, path-style; port 0 picks a free one")
		stateFile    = flag.String("state", "", "file that persists keys, roles and operations across restarts")
		rootKey      = flag.String("root-key", "", "the unrestricted root key (generated when empty)")
		rootSecret   = flag.String("root-secret", "", "the root key's secret")
		pendingPolls = flag.Int("pending-polls", 0, "how many polls an async operation answers pending")
		quiet        = flag.Bool("quiet", false, "do not log one line per request")
		profile      = flag.String("profile", "none", "behave like a real cloud: \"realistic\" is log-normal latency (40 ms median, 400 ms p99), "+
			"async operations pending for 1 to 3 polls, and 50 requests a second per key answered 429 beyond; the flags below override its values. "+
			"\"manners\": create-api-key 404 for a role younger than 1.5 s, 429s with their wait in the body, RFC 9457 errors. "+
			"\"no-legacy\": no legacy access-key endpoints")
		faults emulator.Faults
	)
	flag.IntVar(&faults.LatencyMS, "latency-ms", 0, "delay every /v2 call by this many milliseconds")
	flag.IntVar(&faults.LatencyP99MS, "latency-p99-ms", 0, "with it above --latency-ms, latency is log-normal with this 99th percentile")
	flag.Float64Var(&faults.KeyRate, "key-rate", 0, "requests per second each key may make; beyond, 429 with Retry-After (0: unlimited)")
	flag.IntVar(&faults.JitterMS, "jitter-ms", 0, "plus up to this many milliseconds")
	flag.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of /v2 calls answered 503")
	flag.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of /v2 calls answered 429")
	flag.IntVar(&faults.RetryAfterSeconds, "retry-after", 1, "Retry-After seconds of a 429")
	flag.Float64Var(&faults.LoseResponseRate, "lose-response-rate", 0, "fraction of mutating /v2 calls applied and then answered 504")
	flag.Parse()
	if err := applyProfile(*profile, &faults); err != nil {
		return err
	}

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
	sosListener, err := net.Listen("tcp", *sosListen)
	if err != nil {
		return err
	}
	key, secret := server.Root()
	banner, _ := json.Marshal(map[string]string{
		"endpoint": "http://" + listener.Addr().String() + "/v2", "sos-endpoint": "http://" + sosListener.Addr().String(),
		"key": key, "secret": secret,
	})
	fmt.Println(string(banner))

	httpServer := &http.Server{Handler: server, ReadHeaderTimeout: 10 * time.Second}
	sosServer := &http.Server{Handler: server.SOSHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sosServer.Serve(sosListener) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdown)
		_ = sosServer.Shutdown(shutdown)
	}()
	logger.Info("serving the Exoscale IAM API", "endpoint", "http://"+listener.Addr().String()+"/v2", "key", key)
	if err := httpServer.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
