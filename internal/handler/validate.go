package handler

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	merrors "go-micro.dev/v4/errors"

	"github.com/go-micro-otel/reference/internal/store"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// Limits on input. Error messages name the field and the rule, never the value: they end up
// in spans and logs, and the value may be personal data.
const (
	maxNameRunes      = 100
	maxEmailBytes     = 254
	minPhoneDigits    = 7
	maxPhoneDigits    = 15
	maxPhoneBytes     = 32
	defaultPageSize   = 20
	maxPageSize       = 100
	maxPage           = 1_000_000
	maxItems          = 50
	maxSKUBytes       = 64
	maxQuantity       = 1000
	maxUnitPriceCents = 100_000_000
	maxKeyBytes       = 64
)

func validateNewUser(service string, req *userpb.CreateUserRequest) (store.User, error) {
	name := strings.TrimSpace(req.GetName())
	switch {
	case name == "":
		return store.User{}, merrors.BadRequest(service, "name is required")
	case !utf8.ValidString(name):
		return store.User{}, merrors.BadRequest(service, "name is not valid UTF-8")
	case utf8.RuneCountInString(name) > maxNameRunes:
		return store.User{}, merrors.BadRequest(service, "name is longer than %d characters", maxNameRunes)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return store.User{}, merrors.BadRequest(service, "name contains control characters")
	}
	email := strings.TrimSpace(req.GetEmail())
	if err := validateEmail(service, email); err != nil {
		return store.User{}, err
	}
	phone := strings.TrimSpace(req.GetPhone())
	if err := validatePhone(service, phone); err != nil {
		return store.User{}, err
	}
	return store.User{Name: name, Email: email, Phone: phone}, nil
}

func validateEmail(service, email string) error {
	if email == "" {
		return merrors.BadRequest(service, "email is required")
	}
	if len(email) > maxEmailBytes {
		return merrors.BadRequest(service, "email is longer than %d bytes", maxEmailBytes)
	}
	// A bare address: no display name, no angle brackets, no comments, a dotted domain.
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email || !utf8.ValidString(email) {
		return merrors.BadRequest(service, "email is not a valid address")
	}
	at := strings.LastIndexByte(email, '@')
	domain := email[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return merrors.BadRequest(service, "email is not a valid address")
	}
	return nil
}

// validatePhone accepts an optional leading "+", then digits with spaces, dashes and
// parentheses between them, 7 to 15 digits in all (E.164).
func validatePhone(service, phone string) error {
	if phone == "" {
		return nil
	}
	if len(phone) > maxPhoneBytes {
		return merrors.BadRequest(service, "phone is longer than %d bytes", maxPhoneBytes)
	}
	digits := 0
	for i, r := range phone {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0:
		case r == ' ' || r == '-' || r == '(' || r == ')':
		default:
			return merrors.BadRequest(service, "phone may hold only digits, spaces, dashes, parentheses and a leading +")
		}
	}
	if digits < minPhoneDigits || digits > maxPhoneDigits {
		return merrors.BadRequest(service, "phone must have %d to %d digits", minPhoneDigits, maxPhoneDigits)
	}
	return nil
}

func validateID(service, field string, v int64) error {
	if v <= 0 {
		return merrors.BadRequest(service, "%s must be a positive integer", field)
	}
	return nil
}

// page is a validated page request.
type page struct {
	number, size int32
}

func (p page) limit() int  { return int(p.size) }
func (p page) offset() int { return int(p.number-1) * int(p.size) }

// validatePage applies the defaults (page 1, 20 per page) and the bounds.
func validatePage(service string, number, size int32) (page, error) {
	if number == 0 {
		number = 1
	}
	if size == 0 {
		size = defaultPageSize
	}
	if number < 1 || number > maxPage {
		return page{}, merrors.BadRequest(service, "page must be between 1 and %d", maxPage)
	}
	if size < 1 || size > maxPageSize {
		return page{}, merrors.BadRequest(service, "page_size must be between 1 and %d", maxPageSize)
	}
	return page{number: number, size: size}, nil
}

// validateItems checks an order's lines and returns them with the order's total.
func validateItems(service string, items []*orderpb.Item) ([]store.Item, int64, error) {
	if len(items) == 0 {
		return nil, 0, merrors.BadRequest(service, "an order needs at least one item")
	}
	if len(items) > maxItems {
		return nil, 0, merrors.BadRequest(service, "an order has at most %d items", maxItems)
	}
	out := make([]store.Item, 0, len(items))
	var total int64
	for i, it := range items {
		sku := it.GetSku()
		switch {
		case sku == "" || len(sku) > maxSKUBytes:
			return nil, 0, merrors.BadRequest(service, "items[%d].sku must be 1 to %d bytes", i, maxSKUBytes)
		case strings.IndexFunc(sku, notTokenRune) >= 0:
			return nil, 0, merrors.BadRequest(service, "items[%d].sku may hold only letters, digits, '-', '_' and '.'", i)
		case it.GetQuantity() < 1 || it.GetQuantity() > maxQuantity:
			return nil, 0, merrors.BadRequest(service, "items[%d].quantity must be between 1 and %d", i, maxQuantity)
		case it.GetUnitPriceCents() < 0 || it.GetUnitPriceCents() > maxUnitPriceCents:
			return nil, 0, merrors.BadRequest(service, "items[%d].unit_price_cents must be between 0 and %d", i, maxUnitPriceCents)
		}
		// Bounded: 50 items * 1000 * 1e8 fits an int64 many times over.
		total += int64(it.GetQuantity()) * it.GetUnitPriceCents()
		out = append(out, store.Item{SKU: sku, Quantity: it.GetQuantity(), UnitPriceCents: it.GetUnitPriceCents()})
	}
	return out, total, nil
}

// replayEvent is the span event of a request answered from its idempotency key.
const replayEvent = "replayed for its idempotency_key"

// validateIdempotencyKey: a key is optional, and at most 64 of the characters a SKU may hold,
// enough for a UUID or a ULID.
func validateIdempotencyKey(service, key string) error {
	switch {
	case len(key) > maxKeyBytes:
		return merrors.BadRequest(service, "idempotency_key is longer than %d bytes", maxKeyBytes)
	case strings.IndexFunc(key, notTokenRune) >= 0:
		return merrors.BadRequest(service, "idempotency_key may hold only letters, digits, '-', '_' and '.'")
	}
	return nil
}

// notTokenRune is false for the characters of a SKU or an idempotency key.
func notTokenRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}
