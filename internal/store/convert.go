package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// DeliveryIgnored is the status of a delivery for a project labtrail does
// not sync: kept, with the reason in last_error, and converted into
// nothing.
const DeliveryIgnored = "ignored"

// DeliveryStatuses are every status a delivery can have, in the order the
// documentation lists them.
var DeliveryStatuses = []string{DeliveryPending, DeliveryProcessed, DeliveryStoredRaw, DeliveryIgnored, DeliveryFailed}

// Conversion is what converting one delivery came to: its events and the
// status to record (DeliveryProcessed, DeliveryStoredRaw, DeliveryIgnored
// or DeliveryFailed) with its reason (kept as last_error).
type Conversion struct {
	ID     int64
	Events []change.Event
	Status string
	Reason string
}

// DeliveryClaim says which deliveries ConvertDeliveries takes: the IDs
// given, whatever their status (a replay), or else up to Limit pending
// ones, oldest first. MaxBytes, if positive, bounds the bodies one claim
// holds in memory: the oldest deliveries whose bodies add up to at most
// MaxBytes are taken (always at least one).
type DeliveryClaim struct {
	Limit    int
	IDs      []int64
	MaxBytes int64
}

// ConvertResult is what ConvertDeliveries stored.
type ConvertResult struct {
	// Deliveries are the deliveries claimed, bodies included, oldest
	// first; Conversions their outcomes as recorded, in the same order.
	Deliveries  []Delivery
	Conversions []Conversion
	Upsert      UpsertResult
	// More says that more deliveries may be pending: the claim took
	// Limit of them, or MaxBytes left some it found.
	More bool
}

// DeliveryConverter turns stored webhook deliveries into events in
// batches.
type DeliveryConverter interface {
	// ConvertDeliveries claims the deliveries claim selects and hands them
	// to convert, which must return one Conversion for each and do no I/O
	// (it may be called again if the transaction is retried). In one
	// transaction it then stores every conversion's events (the Upsert
	// rule) and records each delivery's status, reason, processed_at and
	// one more attempt. A conversion holding an event the store refuses
	// (Dialect.CheckEvent) is recorded failed with the reason and its
	// events are left out; it does not fail the batch. Any other error
	// stores nothing. On PostgreSQL the rows are claimed with FOR UPDATE
	// SKIP LOCKED, so replicas converting at once never take the same
	// delivery.
	ConvertDeliveries(ctx context.Context, claim DeliveryClaim, convert func([]Delivery) []Conversion) (ConvertResult, error)
}

// ClaimDeliveries is the statement that selects the id and body size of
// claim's deliveries, oldest first; lock is what the backend appends to
// take the rows ("" for none). The bodies are read after (Deliveries),
// of those within claim.MaxBytes only (ClaimedIDs).
func (d Dialect) ClaimDeliveries(claim DeliveryClaim, lock string) (string, []any, error) {
	q := d.Query()
	sql := `SELECT id, length(body) FROM deliveries`
	if len(claim.IDs) > 0 {
		return sql + ` WHERE id IN (` + d.ids(q, claim.IDs) + `) ORDER BY id ` + lock, q.Args(), nil
	}
	if claim.Limit <= 0 {
		return "", nil, fmt.Errorf("claim deliveries: limit %d", claim.Limit)
	}
	q.Where("status = ?", DeliveryPending)
	return sql + q.WhereSQL() + ` ORDER BY id LIMIT ` + q.Arg(claim.Limit) + ` ` + lock, q.Args(), nil
}

func (d Dialect) ids(q *Query, ids []int64) string {
	ps := make([]string, len(ids))
	for i, id := range ids {
		ps[i] = q.Arg(id)
	}
	return strings.Join(ps, ", ")
}

// ClaimedSize is one row of ClaimDeliveries.
type ClaimedSize struct {
	ID   int64
	Size int64
}

// ScanClaimed reads a ClaimDeliveries row.
func ScanClaimed(r Row) (ClaimedSize, error) {
	var c ClaimedSize
	return c, r.Scan(&c.ID, &c.Size)
}

// ClaimedIDs are the ids of the oldest claimed rows whose bodies add up
// to at most maxBytes (all of them when maxBytes is not positive; always
// the first).
func ClaimedIDs(rows []ClaimedSize, maxBytes int64) []int64 {
	out := make([]int64, 0, len(rows))
	total := int64(0)
	for _, r := range rows {
		total += r.Size
		if maxBytes > 0 && len(out) > 0 && total > maxBytes {
			break
		}
		out = append(out, r.ID)
	}
	return out
}

// Deliveries is the statement that reads the deliveries ids names,
// bodies included, oldest first.
func (d Dialect) Deliveries(ids []int64) (string, []any) {
	q := d.Query()
	return `SELECT ` + DeliveryColumns + `, body FROM deliveries WHERE id IN (` + d.ids(q, ids) + `) ORDER BY id`, q.Args()
}

// FinishDelivery is the statement that records a conversion's outcome:
// status, reason, one more attempt, and processed_at (now for an outcome
// that is final: every status but pending).
func (d Dialect) FinishDelivery(c Conversion, now time.Time) (string, []any) {
	var processed time.Time
	if c.Status != DeliveryPending {
		processed = now
	}
	return `UPDATE deliveries SET status = ` + d.Param(1) + `, last_error = ` + d.Param(2) +
			`, attempts = attempts + 1, processed_at = ` + d.Param(3) + ` WHERE id = ` + d.Param(4),
		[]any{c.Status, c.Reason, d.Time(processed), c.ID}
}

// CheckConversions matches convert's conversions to the claimed
// deliveries and checks their events: a delivery with an event the backend
// refuses becomes failed with the reason and loses its events, one the
// conversions leave out or give an unknown status is an error (a bug in
// convert). It returns the conversions in the deliveries' order and the
// events to store, in that order.
func (d Dialect) CheckConversions(ds []Delivery, cs []Conversion) ([]Conversion, []change.Event, error) {
	byID := make(map[int64]Conversion, len(cs))
	for _, c := range cs {
		byID[c.ID] = c
	}
	out := make([]Conversion, len(ds))
	var events []change.Event
	for i, dl := range ds {
		c, ok := byID[dl.ID]
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("no conversion for delivery %d", dl.ID)
		case c.Status == DeliveryPending || !isDeliveryStatus(c.Status):
			return nil, nil, fmt.Errorf("delivery %d: conversion status %q", dl.ID, c.Status)
		}
		for _, e := range c.Events {
			if err := d.CheckEvent(e); err != nil {
				c = Conversion{ID: c.ID, Status: DeliveryFailed, Reason: err.Error()}
				break
			}
		}
		out[i] = c
		events = append(events, c.Events...)
	}
	return out, events, nil
}

func isDeliveryStatus(s string) bool {
	for _, v := range DeliveryStatuses {
		if v == s {
			return true
		}
	}
	return false
}

// ClaimBatch is the first half of ConvertDeliveries, the same for every
// SQL backend: on q (the batch's write transaction) it claims pending
// deliveries (lock is the claim's locking clause, "" for none), reads
// those that fit claim.MaxBytes with their bodies, converts them and
// checks the conversions. It returns the result so far (Deliveries,
// Conversions, More) and the events to upsert in the same transaction;
// nothing claimed is a zero result. The backend then upserts the events
// and records each conversion with FinishDelivery.
func ClaimBatch[T any](ctx context.Context, q Querier, d Dialect, sc Scanner[T], claim DeliveryClaim, lock string,
	convert func([]Delivery) []Conversion) (ConvertResult, []change.Event, error) {
	var res ConvertResult
	stmt, args, err := d.ClaimDeliveries(claim, lock)
	if err != nil {
		return res, nil, err
	}
	claimed, err := rowsOf(ctx, q, stmt, args, ScanClaimed)
	if err != nil || len(claimed) == 0 {
		return res, nil, err
	}
	ids := ClaimedIDs(claimed, claim.MaxBytes)
	res.More = len(ids) < len(claimed) || (len(claim.IDs) == 0 && len(claimed) == claim.Limit)
	read, rargs := d.Deliveries(ids)
	if res.Deliveries, err = rowsOf(ctx, q, read, rargs, sc.DeliveryWithBody); err != nil {
		return res, nil, err
	}
	var events []change.Event
	res.Conversions, events, err = d.CheckConversions(res.Deliveries, convert(res.Deliveries))
	return res, events, err
}
