package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/servio/perfkit/resilience"
)

// fetchMenu fails twice with a refused connection, then answers.
func fetchMenu() func(context.Context) (string, error) {
	calls := 0
	return func(context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", fmt.Errorf("dial menu-svc: %w", syscall.ECONNREFUSED)
		}
		return "margherita", nil
	}
}

func ExampleRetry() {
	get := resilience.Retry(resilience.RetryConfig{
		MaxAttempts: 3,
		BaseDelay:   time.Millisecond,
		Retryable:   resilience.RetryOn(syscall.ECONNREFUSED, syscall.ETIMEDOUT),
		OnRetry: func(_ context.Context, attempt int, err error, _ time.Duration) {
			fmt.Println("attempt", attempt, "failed:", err)
		},
	}, fetchMenu())
	menu, err := get(context.Background())
	fmt.Println(menu, err)
	// Output:
	// attempt 1 failed: dial menu-svc: connection refused
	// attempt 2 failed: dial menu-svc: connection refused
	// margherita <nil>
}

func ExampleRetry1() {
	lookup := func(_ context.Context, id int) (string, error) {
		if id < 0 {
			return "", resilience.Permanent(errors.New("bad id"))
		}
		return fmt.Sprint("order-", id), nil
	}
	get := resilience.Retry1(resilience.RetryConfig{}, lookup)
	fmt.Println(get(context.Background(), 7))
	fmt.Println(get(context.Background(), -1))
	// Output:
	// order-7 <nil>
	//  bad id
}

func ExamplePermanent() {
	calls := 0
	_, err := resilience.Retry(resilience.RetryConfig{}, func(context.Context) (int, error) {
		calls++
		return 0, resilience.Permanent(errors.New("card declined"))
	})(context.Background())
	fmt.Println(calls, err)
	// Output: 1 card declined
}

func ExampleTimeoutMsg() {
	slow := func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}
	_, err := resilience.TimeoutMsg(10*time.Millisecond, "inventory lookup too slow", slow)(context.Background())
	fmt.Println(err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.Is(err, resilience.ErrTimeout))
	// Output:
	// resilience: inventory lookup too slow (timeout after 10ms)
	// true true
}

func ExampleTimeout() {
	get := resilience.Timeout(time.Second, func(context.Context) (int, error) { return 42, nil })
	fmt.Println(get(context.Background()))
	// Output: 42 <nil>
}

func ExampleBreaker() {
	cb, err := resilience.NewCircuitBreaker(resilience.BreakerConfig{
		Name:                "payments",
		ConsecutiveFailures: 2,
		OnStateChange: func(name string, from, to resilience.State) {
			fmt.Println(name, from, "->", to)
		},
	})
	if err != nil {
		panic(err)
	}
	charge := resilience.Breaker(cb, func(context.Context) (int, error) {
		return 0, errors.New("503")
	})
	for range 3 {
		_, err := charge(context.Background())
		fmt.Println(err, errors.Is(err, resilience.ErrOpen))
	}
	// Output:
	// 503 false
	// payments closed -> open
	// 503 false
	// resilience: circuit open (payments) true
}

func ExampleNotFailure() {
	cb, _ := resilience.NewCircuitBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1})
	notFound := errors.New("404 not found")
	get := resilience.Breaker(cb, func(context.Context) (int, error) {
		return 0, resilience.NotFailure(notFound)
	})
	_, err := get(context.Background())
	fmt.Println(errors.Is(err, notFound), cb.State())
	// Output: true closed
}

func ExampleBreakers() {
	hosts, _ := resilience.NewBreakers(resilience.BreakerConfig{Name: "http", ConsecutiveFailures: 1}, 100)
	cb := hosts.Get("api.openai.com")
	err := cb.Do(context.Background(), func(context.Context) error { return nil })
	fmt.Println(cb.Name(), err, hosts.Len())
	// Output: http/api.openai.com <nil> 1
}

func ExampleIsolate() {
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 10, MaxQueue: 20, QueueTimeout: time.Second})
	render := resilience.Isolate(bh, func(context.Context) (string, error) { return "pdf", nil })
	fmt.Println(render(context.Background()))
	// Output: pdf <nil>
}

func ExampleThrottle() {
	rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Limit: 1, Per: time.Minute})
	send := resilience.Throttle(rl, func(context.Context) (string, error) { return "sent", nil })
	fmt.Println(send(context.Background()))
	_, err := send(context.Background())
	var rle *resilience.RateLimitError
	fmt.Println(errors.As(err, &rle), rle.RetryAfter() > 59*time.Second)
	// Output:
	// sent <nil>
	// true true
}

func ExampleFallbackValue() {
	menu := resilience.FallbackValue(func(context.Context) ([]string, error) {
		return nil, errors.New("menu service down")
	}, []string{"cached: margherita"})
	fmt.Println(menu(context.Background()))
	// Output: [cached: margherita] <nil>
}

func ExampleNewBudget() {
	budget, _ := resilience.NewBudget(0.2, 10) // retries ≤ ~20% of calls
	p := resilience.RetryConfig{Budget: budget, BaseDelay: time.Millisecond}
	get := resilience.Retry(p, func(context.Context) (int, error) { return 1, nil })
	fmt.Println(get(context.Background()))
	// Output: 1 <nil>
}

func ExampleWrap1() {
	p, err := resilience.NewPipeline(resilience.PipelineConfig{
		Name:     "menu",
		Timeout:  2 * time.Second,
		Retry:    &resilience.RetryConfig{MaxAttempts: 3, BaseDelay: time.Millisecond},
		Breaker:  &resilience.BreakerConfig{FailureRatio: 0.5},
		Bulkhead: &resilience.BulkheadConfig{MaxConcurrent: 50},
	})
	if err != nil {
		panic(err)
	}
	type menuReq struct{ Restaurant int }
	get := resilience.Wrap1(p, func(_ context.Context, r menuReq) (string, error) {
		return fmt.Sprint("menu of ", r.Restaurant), nil
	})
	fmt.Println(get(context.Background(), menuReq{Restaurant: 3}))
	// Output: menu of 3 <nil>
}

func ExampleOpenAI() {
	policy := resilience.OpenAI()
	policy.Retry.MaxAttempts = 2 // presets are values: adjust before building
	p, err := resilience.NewPipeline(policy)
	if err != nil {
		panic(err)
	}
	answer, err := resilience.Do(context.Background(), p, func(context.Context) (string, error) {
		return "42", nil
	})
	fmt.Println(answer, err, p.Breaker().Name())
	// Output: 42 <nil> openai.breaker
}

func ExampleFallback() {
	p, _ := resilience.NewPipeline(resilience.PipelineConfig{
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: 1},
	})
	recommend := resilience.Fallback(
		resilience.Wrap(p, func(context.Context) (string, error) { return "", errors.New("llm down") }),
		func(_ context.Context, err error) (string, error) {
			if errors.Is(err, resilience.ErrOpen) {
				return "today's special", nil // breaker open: degrade instead of failing
			}
			return "", err
		})
	fmt.Println(recommend(context.Background()))
	fmt.Println(recommend(context.Background()))
	// Output:
	//  llm down
	// today's special <nil>
}

func ExampleTwoStepBreaker() {
	cb, _ := resilience.NewTwoStepBreaker(resilience.BreakerConfig{Name: "api.example.com", ConsecutiveFailures: 1})
	roundTrip := func(status int) error {
		done, err := cb.Allow()
		if err != nil {
			return err // open: fail fast without sending
		}
		if status >= 500 {
			err = fmt.Errorf("status %d", status)
		}
		done(err)
		return err
	}
	fmt.Println(roundTrip(200))
	fmt.Println(roundTrip(503))
	fmt.Println(roundTrip(200))
	// Output:
	// <nil>
	// status 503
	// resilience: circuit open (api.example.com)
}

// Every wrapper has a one-argument form named with a 1 suffix.
func ExampleBreaker1() {
	cb, err := resilience.NewCircuitBreaker(resilience.BreakerConfig{Name: "sms", ConsecutiveFailures: 1})
	if err != nil {
		panic(err)
	}
	send := resilience.Breaker1(cb, func(_ context.Context, to string) (string, error) {
		if to == "" {
			return "", errors.New("gateway down")
		}
		return "sent to " + to, nil
	})
	fmt.Println(send(context.Background(), "+15550100"))
	fmt.Println(send(context.Background(), ""))
	fmt.Println(send(context.Background(), "+15550100"))
	// Output:
	// sent to +15550100 <nil>
	//  gateway down
	//  resilience: circuit open (sms)
}

func ExampleFallback1() {
	prices := map[string]int{"margherita": 9}
	price := resilience.Fallback1(func(_ context.Context, pizza string) (int, error) {
		return 0, errors.New("pricing service down")
	}, func(_ context.Context, pizza string, err error) (int, error) {
		if p, ok := prices[pizza]; ok {
			return p, nil // last known price
		}
		return 0, err
	})
	fmt.Println(price(context.Background(), "margherita"))
	fmt.Println(price(context.Background(), "hawaii"))
	// Output:
	// 9 <nil>
	// 0 pricing service down
}
