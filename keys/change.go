package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Disable disables a key: every service refuses it from now on, within
// about a second (the same propagation as a revocation), with an error
// wrapping [ErrKeyDisabled], until [Service.Enable]. Disabling a disabled
// key changes nothing; disabling a revoked one is an error wrapping
// ErrConflict. It returns the key as it is now.
func (s *Service) Disable(ctx context.Context, id, actor string) (*Key, error) {
	return s.change(ctx, id, 0, func(old *Record, now time.Time) (*Record, []AuditEvent, error) {
		if !old.Revoked.IsZero() {
			return nil, nil, fmt.Errorf("%w: key %s is revoked", ErrConflict, id)
		}
		if !old.Disabled.IsZero() {
			return nil, nil, nil
		}
		upd := *old
		upd.Disabled = now
		return &upd, []AuditEvent{{Time: now, Actor: actor, Action: ActionDisable, KeyID: id}}, nil
	})
}

// Enable enables a disabled key again. Enabling a key that is not
// disabled changes nothing; enabling a revoked one is an error wrapping
// ErrConflict. It returns the key as it is now.
func (s *Service) Enable(ctx context.Context, id, actor string) (*Key, error) {
	return s.change(ctx, id, 0, func(old *Record, now time.Time) (*Record, []AuditEvent, error) {
		if !old.Revoked.IsZero() {
			return nil, nil, fmt.Errorf("%w: key %s is revoked", ErrConflict, id)
		}
		if old.Disabled.IsZero() {
			return nil, nil, nil
		}
		upd := *old
		upd.Disabled = time.Time{}
		return &upd, []AuditEvent{{Time: now, Actor: actor, Action: ActionEnable, KeyID: id,
			Detail: "disabled since " + old.Disabled.Format(time.RFC3339)}}, nil
	})
}

// Update changes the fields of a key that req sets, in one write, and
// returns the key as it is now. Each kind of change goes to the audit log
// as its own event: set-scopes for the scopes, set-limits for the rate
// limit and uses, update for the label, expiry and metadata. Setting what
// the key has changes nothing. Invalid values get an error wrapping
// ErrInvalid; changing a revoked key, or one whose version is not
// req.Version, an error wrapping ErrConflict.
func (s *Service) Update(ctx context.Context, req UpdateRequest) (*Key, error) {
	var (
		scopes []string
		meta   json.RawMessage
		rl     *RateLimit
		err    error
	)
	if req.Label != nil {
		if err := checkLabel(*req.Label); err != nil {
			return nil, err
		}
	}
	if req.Scopes != nil {
		if scopes, err = normalizeScopes(*req.Scopes); err != nil {
			return nil, err
		}
	}
	if req.Metadata != nil {
		if meta, err = normalizeMetadata(req.Metadata); err != nil {
			return nil, err
		}
	}
	if req.RateLimit != nil && !req.RateLimit.IsZero() {
		l, err := normalizeRateLimit(*req.RateLimit)
		if err != nil {
			return nil, err
		}
		rl = &l
	}
	if req.Uses != nil {
		if _, err := checkUses(*req.Uses, time.Time{}); err != nil {
			return nil, err
		}
	}
	return s.change(ctx, req.ID, req.Version, func(old *Record, now time.Time) (*Record, []AuditEvent, error) {
		if !old.Revoked.IsZero() {
			return nil, nil, fmt.Errorf("%w: key %s is revoked", ErrConflict, req.ID)
		}
		upd := *old
		var evs []AuditEvent
		event := func(action Action, detail []string) {
			if len(detail) > 0 {
				evs = append(evs, AuditEvent{Time: now, Actor: req.Actor, Action: action, KeyID: req.ID, Detail: strings.Join(detail, " ")})
			}
		}

		var changed []string
		if req.Label != nil && *req.Label != old.Label {
			upd.Label = *req.Label
			changed = append(changed, fmt.Sprintf("label=%q (was %q)", upd.Label, old.Label))
		}
		if req.Expires != nil {
			exp := normTime(*req.Expires)
			switch {
			case exp.Equal(old.Expires):
			case exp.IsZero() && old.Successor != "":
				return nil, nil, fmt.Errorf("%w: key %s was rotated; it works until its overlap ends, which can be moved but not removed", ErrConflict, req.ID)
			case !exp.IsZero() && !exp.After(now):
				return nil, nil, fmt.Errorf("%w: expiry %s is not in the future", ErrInvalid, exp.Format(time.RFC3339))
			default:
				upd.Expires = exp
				changed = append(changed, fmt.Sprintf("expires=%s (was %s)", timeOrNever(exp), timeOrNever(old.Expires)))
			}
		}
		if req.Metadata != nil && !bytes.Equal(meta, old.Metadata) {
			upd.Metadata = meta
			changed = append(changed, fmt.Sprintf("metadata=%dB (was %dB)", len(meta), len(old.Metadata)))
		}
		event(ActionUpdate, changed)

		if req.Scopes != nil && !slices.Equal(scopes, old.Scopes) {
			upd.Scopes = scopes
			event(ActionSetScopes, []string{fmt.Sprintf("scopes=%s (were %s)", strings.Join(scopes, ","), strings.Join(old.Scopes, ","))})
		}

		changed = nil
		if req.RateLimit != nil && !equalPtr(rl, old.RateLimit) {
			upd.RateLimit = rl
			changed = append(changed, fmt.Sprintf("rate=%s (was %s)", describeRateLimit(rl), describeRateLimit(old.RateLimit)))
		}
		if req.Uses != nil {
			uses, _ := checkUses(*req.Uses, now)
			if uses != nil && old.Uses != nil && !uses.Set.After(old.Uses.Set) {
				// A new budget must have a new Set, for the store and
				// for gateways holding uses of the old one: the clock
				// may not have moved on, or may have gone back.
				uses.Set = old.Uses.Set.Add(time.Microsecond)
				uses.Refilled = uses.Set
			}
			if uses != nil || old.Uses != nil {
				upd.Uses = uses
				was := old.Uses
				if was != nil {
					w := *was
					w.Spend(0, now)
					was = &w
				}
				changed = append(changed, fmt.Sprintf("uses=%s (were %s)", describeUses(uses), describeUses(was)))
			}
		}
		event(ActionSetLimits, changed)

		if len(evs) == 0 {
			return nil, nil, nil
		}
		return &upd, evs, nil
	})
}

func equalPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}

// change reads a key, lets f decide what to write (nil: nothing), writes
// it with f's audit events, and returns the key as it is then. With
// version zero, it tries again if another writer changed the key between
// the read and the write; otherwise the key must be at that version.
func (s *Service) change(ctx context.Context, id string, version int64, f func(old *Record, now time.Time) (*Record, []AuditEvent, error)) (*Key, error) {
	var out Key
	err := s.update(ctx, id, func(old *Record) (*Write, error) {
		if version != 0 && old.Version != version {
			return nil, fmt.Errorf("%w: key %s is at version %d, not %d: someone changed it since", ErrConflict, id, old.Version, version)
		}
		now := s.clock()
		upd, evs, err := f(old, now)
		if err != nil {
			return nil, err
		}
		out = old.Key
		if upd == nil {
			s.overlayLastUsed(&out)
			out.asOf = now
			return nil, nil
		}
		out = upd.Key
		out.Version++
		s.overlayLastUsed(&out)
		out.asOf = now
		return &Write{Update: []Record{*upd}, Events: evs}, nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SpendUses spends up to n of the remaining uses of the key id, for a
// gateway that enforces its budget ([Key.Uses]), atomically across every
// service on the store, and returns what it spent; n may be 0, to read
// the budget. A key without a budget gets a grant with Unlimited set.
//
// A gateway spends ahead: it asks for a batch of uses, counts them down in
// memory, and asks for more when they run low, so that the store is
// written once per batch. Uses spent ahead and not used are lost, never
// given twice: a gateway that crashes wastes at most its batch. It drops
// what it holds when the grant's Until passes (the budget was refilled)
// and when the key's Uses.Set is no longer the grant's (a new budget was
// set).
func (s *Service) SpendUses(ctx context.Context, id string, n int64) (UsesGrant, error) {
	if n < 0 {
		return UsesGrant{}, fmt.Errorf("%w: cannot spend %d uses", ErrInvalid, n)
	}
	if !validID(id) {
		return UsesGrant{}, notFound(id)
	}
	g, err := s.store.SpendUses(ctx, id, n, s.clock())
	if errors.Is(err, ErrNotFound) {
		return UsesGrant{}, notFound(id)
	}
	return g, err
}

// ParseUpdate reads a change to a key in JSON, as an admin API's PATCH
// takes it, in the manner of a JSON merge patch (RFC 7396) whose objects
// are replaced whole: a member left out leaves its field as it is, null
// removes it, and a value sets it.
//
//	{"label": "ci", "expires": "90d", "metadata": {"plan": "pro"}, "scopes": ["orders:read"],
//	 "rate_limit": {"rate": "100/s", "burst": 200}, "uses": {"remaining": 1000, "refill": "1000/day"},
//	 "version": 3}
//
// expires is an RFC 3339 time or a duration from now ("90d", "12h"); null
// is never. Null removes a label, the metadata, the rate limit and the
// budget of uses; scopes may be [] but not null. version, if given, is
// [UpdateRequest.Version]. Anything else, or a member of the wrong type,
// is an error wrapping ErrInvalid. The caller sets ID and Actor.
func ParseUpdate(body []byte, now time.Time) (UpdateRequest, error) {
	var req UpdateRequest
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return req, fmt.Errorf("%w: the change must be a JSON object", ErrInvalid)
	}
	for name, raw := range members {
		null := string(raw) == "null"
		bad := func(want string, err error) error {
			if err != nil {
				return fmt.Errorf("%w: %s: want %s: %v", ErrInvalid, name, want, err)
			}
			return fmt.Errorf("%w: %s: want %s", ErrInvalid, name, want)
		}
		switch name {
		case "label":
			var label string
			if !null {
				if err := json.Unmarshal(raw, &label); err != nil {
					return req, bad("a string", nil)
				}
			}
			req.Label = &label
		case "expires":
			var exp time.Time
			if !null {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil || s == "" {
					return req, bad("an RFC 3339 time, a duration such as 90d, or null", nil)
				}
				t, err := ParseExpiry(s, now)
				if err != nil {
					return req, bad("an RFC 3339 time in the future, a duration such as 90d, or null", err)
				}
				exp = t
			}
			req.Expires = &exp
		case "metadata":
			if len(raw) == 0 || raw[0] != '{' && !null {
				return req, bad("a JSON object or null", nil)
			}
			req.Metadata = raw
		case "scopes":
			var scopes []string
			if err := json.Unmarshal(raw, &scopes); err != nil || null {
				return req, bad("an array of scopes", nil)
			}
			req.Scopes = &scopes
		case "rate_limit":
			var l RateLimit
			if !null {
				if err := strictJSON(raw, &l); err != nil || l.IsZero() {
					return req, bad(`{"rate": "100/s", "burst": 200} or null`, err)
				}
			}
			req.RateLimit = &l
		case "uses":
			var u struct {
				Remaining *int64 `json:"remaining"`
				Refill    Rate   `json:"refill"`
			}
			if !null {
				if err := strictJSON(raw, &u); err != nil || u.Remaining == nil {
					return req, bad(`{"remaining": 1000, "refill": "1000/day"} or null`, err)
				}
				if *u.Remaining == 0 && u.Refill.IsZero() {
					return req, bad("a budget of at least one use, or a refill (to stop a key, disable it)", nil)
				}
				req.Uses = &Uses{Remaining: *u.Remaining, Refill: u.Refill}
			} else {
				req.Uses = &Uses{}
			}
		case "version":
			if err := json.Unmarshal(raw, &req.Version); err != nil || req.Version < 1 {
				return req, bad("a version number", nil)
			}
		default:
			return req, fmt.Errorf("%w: %q is not a field that can be changed (label, expires, metadata, scopes, rate_limit, uses, version)", ErrInvalid, name)
		}
	}
	return req, nil
}

// strictJSON decodes data into v, refusing members v does not have.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
