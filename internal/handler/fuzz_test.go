package handler

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	merrors "go-micro.dev/v4/errors"

	"github.com/go-micro-otel/reference/internal/store"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// Every detail validation may give. Matching one of them is what proves a refusal repeats none
// of the input (a substring check would be fooled by a name such as "email"): none has room
// for a value, only for the index of an item.
var (
	userDetails = regexp.MustCompile(`^(name is required|name is not valid UTF-8|name is longer than 100 characters|` +
		`name contains control characters|email is required|email is longer than 254 bytes|email is not a valid address|` +
		`phone is longer than 32 bytes|phone may hold only digits, spaces, dashes, parentheses and a leading \+|` +
		`phone must have 7 to 15 digits)$`)
	orderDetails = regexp.MustCompile(`^(user_id must be a positive integer|an order needs at least one item|` +
		`an order has at most 50 items|page must be between 1 and 1000000|page_size must be between 1 and 100|` +
		`items\[(\d+)\]\.(sku must be 1 to 64 bytes|sku may hold only letters, digits, '-', '_' and '\.'|` +
		`quantity must be between 1 and 1000|unit_price_cents must be between 0 and 100000000)|` +
		`idempotency_key is longer than 64 bytes|idempotency_key may hold only letters, digits, '-', '_' and '\.')$`)
)

// checkRefusal: a refusal is a 400 from service with one of details. It returns the detail's
// submatches.
func checkRefusal(t *testing.T, err error, service string, details *regexp.Regexp) []string {
	t.Helper()
	e := merrors.FromError(err)
	if e.Code != 400 || e.Id != service {
		t.Fatalf("refused with %d from %q, want 400 from %s: %v", e.Code, e.Id, service, err)
	}
	m := details.FindStringSubmatch(e.Detail)
	if m == nil {
		t.Fatalf("detail %q is none of the known ones", e.Detail)
	}
	return m
}

func FuzzValidateNewUser(f *testing.F) {
	for _, s := range [][3]string{
		{"Ada Lovelace", "ada@example.com", "+44 20 7946 0018"},
		{"Grace Hopper", "grace.hopper@navy.example.org", ""},
		{"", "", ""},
		{" \t\u00a0", "ada@example.com", ""},
		{strings.Repeat("é", 100), "a@b.co", "(020) 7946-0018"},
		{strings.Repeat("é", 101), "a@b.co", ""},
		{"Ada\xff", "ad\xffa@example.com", ""},
		{"Ada\x00Lovelace", "Ada <ada@example.com>", "12345"},
		{"Ada", "ada@example.com.", "44+2079460018"},
		{"Ada", `"ada lovelace"@example.com`, "+1234567890123456"},
		{"Ada", "ada@example.com\r\nBcc: eve@example.com", "+44 CALL ME"},
		{"Ada", "ada@[127.0.0.1]", "1234567"},
		{"Ada", "ada(comment)@example.com", strings.Repeat("1", 33)},
		{"Ada", strings.Repeat("a", 243) + "@example.com", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, email, phone string) {
		u, err := validateNewUser(UserServiceName, &userpb.CreateUserRequest{Name: name, Email: email, Phone: phone})
		if err != nil {
			checkRefusal(t, err, UserServiceName, userDetails)
			return
		}
		switch {
		case u.Name == "" || u.Name != strings.TrimSpace(u.Name) || !utf8.ValidString(u.Name):
			t.Fatalf("accepted name %q: empty, untrimmed or not UTF-8", u.Name)
		case utf8.RuneCountInString(u.Name) > maxNameRunes || strings.IndexFunc(u.Name, unicode.IsControl) >= 0:
			t.Fatalf("accepted name %q: too long or with control characters", u.Name)
		}
		at := strings.LastIndexByte(u.Email, '@')
		switch {
		case len(u.Email) > maxEmailBytes || !utf8.ValidString(u.Email) || at < 1:
			t.Fatalf("accepted email %q: too long, not UTF-8 or without a local part", u.Email)
		case strings.IndexFunc(u.Email, unicode.IsControl) >= 0:
			t.Fatalf("accepted email %q with control characters", u.Email)
		case !strings.Contains(u.Email[at+1:], ".") || strings.HasPrefix(u.Email[at+1:], ".") || strings.HasSuffix(u.Email, "."):
			t.Fatalf("accepted email %q without a dotted domain", u.Email)
		}
		if u.Phone != "" {
			digits := 0
			for i, r := range u.Phone {
				switch {
				case r >= '0' && r <= '9':
					digits++
				case r == '+' && i == 0, strings.ContainsRune(" -()", r):
				default:
					t.Fatalf("accepted phone %q with %q", u.Phone, r)
				}
			}
			if len(u.Phone) > maxPhoneBytes || digits < minPhoneDigits || digits > maxPhoneDigits {
				t.Fatalf("accepted phone %q: %d bytes, %d digits", u.Phone, len(u.Phone), digits)
			}
		}
	})
}

// FuzzValidateOrder checks what CreateOrder and ListOrders validate: the user id, the items (n
// valid ones, the one at pos replaced by the fuzzed item), the idempotency key and the page.
func FuzzValidateOrder(f *testing.F) {
	f.Add(int64(1), uint8(1), uint8(0), "BOOK-1", int32(1), int64(1999), int32(0), int32(0), "0f8b1c2e-7a4d-4e5f-9b6a-3c2d1e0f9a8b")
	f.Add(int64(0), uint8(0), uint8(0), "", int32(0), int64(0), int32(-1), int32(101), "")
	f.Add(int64(-1), uint8(51), uint8(3), "A B", int32(1001), int64(-1), int32(1_000_001), int32(-5), "key with spaces")
	f.Add(int64(9), uint8(50), uint8(49), strings.Repeat("S", 65), int32(1000), int64(100_000_000), int32(1_000_000), int32(100), strings.Repeat("k", 65))
	f.Add(int64(9), uint8(50), uint8(7), "X'); DROP TABLE orders;--", int32(2147483647), int64(9223372036854775807), int32(-2147483648), int32(1), "k'); DROP TABLE order_requests;--")
	f.Add(int64(9), uint8(2), uint8(1), "BOOK\xff", int32(-2147483648), int64(100_000_001), int32(2147483647), int32(2147483647), "01J8\xffZ")
	f.Fuzz(func(t *testing.T, userID int64, n, pos uint8, sku string, quantity int32, price int64, number, size int32, key string) {
		if err := validateID(OrderServiceName, "user_id", userID); err != nil {
			checkRefusal(t, err, OrderServiceName, orderDetails)
		} else if userID <= 0 {
			t.Fatalf("accepted user_id %d", userID)
		}

		in := make([]*orderpb.Item, n)
		for i := range in {
			in[i] = &orderpb.Item{Sku: "A", Quantity: 1}
		}
		if n > 0 {
			in[int(pos)%int(n)] = &orderpb.Item{Sku: sku, Quantity: quantity, UnitPriceCents: price}
		}
		items, total, err := validateItems(OrderServiceName, in)
		if err != nil {
			m := checkRefusal(t, err, OrderServiceName, orderDetails)
			if m[2] != "" && m[2] != strconv.Itoa(int(pos)%int(n)) {
				t.Fatalf("refused item %s, but only item %d was fuzzed", m[2], int(pos)%int(n))
			}
		} else {
			checkItems(t, items, total)
		}

		if err := validateIdempotencyKey(OrderServiceName, key); err != nil {
			checkRefusal(t, err, OrderServiceName, orderDetails)
		} else if len(key) > maxKeyBytes || strings.IndexFunc(key, notTokenRune) >= 0 {
			t.Fatalf("accepted idempotency_key %q", key)
		}

		p, err := validatePage(OrderServiceName, number, size)
		if err != nil {
			checkRefusal(t, err, OrderServiceName, orderDetails)
			return
		}
		wantNumber, wantSize := max(number, 1), size
		if size == 0 {
			wantSize = defaultPageSize
		}
		if p.number != wantNumber || p.size != wantSize || p.number > maxPage || p.size > maxPageSize || p.size < 1 {
			t.Fatalf("page %d size %d accepted as %+v", number, size, p)
		}
		if p.limit() != int(p.size) || p.offset() != (int(p.number)-1)*int(p.size) || p.offset() < 0 {
			t.Fatalf("%+v: limit %d offset %d", p, p.limit(), p.offset())
		}
	})
}

// checkItems: accepted items keep the documented limits and their total is their sum.
func checkItems(t *testing.T, items []store.Item, total int64) {
	t.Helper()
	if len(items) < 1 || len(items) > maxItems {
		t.Fatalf("accepted %d items", len(items))
	}
	var sum int64
	for i, it := range items {
		switch {
		case it.SKU == "" || len(it.SKU) > maxSKUBytes || strings.IndexFunc(it.SKU, notTokenRune) >= 0:
			t.Fatalf("item %d: accepted sku %q", i, it.SKU)
		case it.Quantity < 1 || it.Quantity > maxQuantity:
			t.Fatalf("item %d: accepted quantity %d", i, it.Quantity)
		case it.UnitPriceCents < 0 || it.UnitPriceCents > maxUnitPriceCents:
			t.Fatalf("item %d: accepted unit price %d", i, it.UnitPriceCents)
		}
		sum += int64(it.Quantity) * it.UnitPriceCents
	}
	if total != sum || total < 0 {
		t.Fatalf("total %d, want %d", total, sum)
	}
}
