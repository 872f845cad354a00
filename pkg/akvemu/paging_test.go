package akvemu_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

func TestPaging(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("regular pages hold 25 keys", func(t *testing.T) {
		v := addVault(t, e, akvemu.VaultSpec{Name: "regular", Keys: 130})
		names, pages, _ := listAll(t, newClient(t, e, v, nil))
		if want := []int{25, 25, 25, 25, 25, 5}; !slices.Equal(pages, want) {
			t.Errorf("pages %v, want %v", pages, want)
		}
		if len(names) != 130 {
			t.Errorf("%d keys", len(names))
		}
		if got := v.Counters().Count(akvemu.OpListKeys, 200); got != 6 {
			t.Errorf("ListKeys 200 counter = %d, want 6", got)
		}
	})

	t.Run("irregular pages return every key exactly once", func(t *testing.T) {
		v := addVault(t, e, akvemu.VaultSpec{Name: "irregular", Keys: 3000, Faults: &akvemu.Faults{IrregularPages: true}})
		names, pages, empty := listAll(t, newClient(t, e, v, nil))
		if empty == 0 {
			t.Errorf("no empty page with a nextLink in %d pages", len(pages))
		}
		sizes := map[int]bool{}
		for _, p := range pages {
			sizes[p] = true
		}
		if len(sizes) < 10 {
			t.Errorf("page sizes not irregular: %v", sizes)
		}
		want := make([]string, 0, 3000)
		for _, k := range v.Keys() {
			want = append(want, k.Name)
		}
		if !slices.Equal(names, want) {
			t.Fatalf("listed %d keys, want %d in case-insensitive order", len(names), len(want))
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[strings.ToLower(n)] {
				t.Fatalf("%s listed twice", n)
			}
			seen[strings.ToLower(n)] = true
		}
		if got := v.Counters().Count(akvemu.OpListKeys, 200); got != int64(len(pages)) {
			t.Errorf("ListKeys counter %d, pages %d", got, len(pages))
		}
	})

	t.Run("listing while the vault changes behaves as a sorted cursor", func(t *testing.T) {
		v := addVault(t, e, akvemu.VaultSpec{Name: "cursor", Keys: 100})
		c := newClient(t, e, v, nil)
		ctx := context.Background()
		before := v.Keys()
		pager := c.NewListKeyPropertiesPager(nil)
		var got []string
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Value {
			got = append(got, k.KID.Name())
		}
		// Between pages: delete a returned key and an unreturned one, add keys before
		// and after the cursor.
		if _, err := v.DeleteKey(before[2].Name); err != nil {
			t.Fatal(err)
		}
		deletedAhead := before[60].Name
		if _, err := v.DeleteKey(deletedAhead); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"000-before-cursor", "zzz-after-cursor"} {
			if _, err := v.CreateKey(n, akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
				t.Fatal(err)
			}
		}
		for pager.More() {
			p, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range p.Value {
				got = append(got, k.KID.Name())
			}
		}
		seen := map[string]int{}
		for _, n := range got {
			seen[n]++
			if seen[n] > 1 {
				t.Errorf("%s returned twice", n)
			}
		}
		for i, k := range before {
			if i == 2 || k.Name == deletedAhead {
				continue
			}
			if seen[k.Name] != 1 {
				t.Errorf("%s existed throughout but was returned %d times", k.Name, seen[k.Name])
			}
		}
		if seen[deletedAhead] != 0 || seen["zzz-after-cursor"] != 1 || seen["000-before-cursor"] != 0 {
			t.Errorf("deleted-ahead %d, after-cursor %d, before-cursor %d", seen[deletedAhead], seen["zzz-after-cursor"], seen["000-before-cursor"])
		}
	})
}
