package subscribers_test

import (
	"slices"
	"testing"

	"github.com/grpcmgmt/grpcmgmt/internal/subscribers"
)

func names(l *subscribers.List[string]) []string { return slices.Collect(l.All()) }

// Callbacks come in the order added; cancel removes one (twice is once),
// and All stops when its caller does.
func TestList(t *testing.T) {
	var l subscribers.List[string]
	if got := names(&l); len(got) != 0 {
		t.Fatalf("zero List: %v, want empty", got)
	}
	cancelA := l.Add("a")
	cancelB := l.Add("b")
	l.Add("c")
	if got := names(&l); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("All() = %v, want [a b c]", got)
	}
	cancelB()
	cancelB()
	if got := names(&l); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after cancelling b: %v, want [a c]", got)
	}
	for fn := range l.All() {
		if fn != "a" {
			t.Fatalf("first yielded %q, want a", fn)
		}
		break
	}
	cancelA()
	if got := names(&l); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after cancelling a: %v, want [c]", got)
	}
}

// A callback that registers another while the list is delivered does not
// change the delivery under way: it sees the list as it was.
func TestAddDuringAll(t *testing.T) {
	var l subscribers.List[string]
	l.Add("a")
	var got []string
	for fn := range l.All() {
		got = append(got, fn)
		l.Add("late")
	}
	if !slices.Equal(got, []string{"a"}) {
		t.Fatalf("delivered %v, want [a]", got)
	}
	if n := len(names(&l)); n != 2 {
		t.Fatalf("%d callbacks after, want 2", n)
	}
}
