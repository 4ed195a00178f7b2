// The peer for bench/run.py: the Benthos stream engine (github.com/redpanda-data/benthos/v4,
// MIT; the core Redpanda Connect is built on) with only the components this comparison needs:
//
//   - http_server input (core): answers only after the output acknowledged the message(s);
//   - mapping / unarchive processors (core): the JSON callback to the canonical record;
//   - mms_avro_encode processor (here): Avro + Confluent wire format, schema id fetched from
//     the registry once at start-up (what schema_registry_encode does after its first call);
//   - mms_kafka output (here): franz-go, acks=all, idempotent, lz4, 5 ms linger (the
//     producer kafka_franz wraps, with the connector's settings);
//   - e164 Bloblang method (here): the connector's phone-number normalisation, on
//     nyaruka/phonenumbers (the Go port of libphonenumber, as Python's phonenumbers is).
//
// Redpanda Connect itself (github.com/redpanda-data/connect/v4) is not used: see bench/README.md.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nyaruka/phonenumbers"
	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func main() {
	err := service.RegisterProcessor("mms_avro_encode", service.NewConfigSpec().
		Field(service.NewStringField("url")).
		Field(service.NewStringField("subject")).
		Field(service.NewStringField("schema_file")), newEncoder)
	if err != nil {
		panic(err)
	}
	err = service.RegisterBatchOutput("mms_kafka", service.NewConfigSpec().
		Field(service.NewStringField("seed_brokers")).
		Field(service.NewStringField("topic")).
		Field(service.NewIntField("max_in_flight").Default(1024)), newOutput)
	if err != nil {
		panic(err)
	}
	if err = registerE164(); err != nil {
		panic(err)
	}
	service.RunCLI(context.Background())
}

// ---- Avro encoding -------------------------------------------------------------------------

type encoder struct {
	schema avro.Schema
	prefix []byte // magic byte 0 + big-endian schema id
}

func newEncoder(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
	url, _ := conf.FieldString("url")
	subject, _ := conf.FieldString("subject")
	file, _ := conf.FieldString("schema_file")
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	schema, err := avro.Parse(string(text))
	if err != nil {
		return nil, err
	}
	id, err := register(url, subject, string(text))
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:], uint32(id))
	return &encoder{schema: schema, prefix: prefix}, nil
}

// register posts the schema once (idempotent for an identical schema) and returns its id.
func register(url, subject, schema string) (int, error) {
	body, _ := json.Marshal(map[string]string{"schema": schema, "schemaType": "AVRO"})
	resp, err := http.Post(fmt.Sprintf("%s/subjects/%s/versions", strings.TrimRight(url, "/"), subject),
		"application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("registry answered %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, err
	}
	return out.ID, nil
}

func (e *encoder) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	v, err := msg.AsStructured()
	if err != nil {
		return nil, err
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("record is not an object")
	}
	normalise(rec)
	data, err := avro.Marshal(e.schema, rec)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(e.prefix)+len(data))
	out = append(append(out, e.prefix...), data...)
	msg.SetBytes(out)
	return service.MessageBatch{msg}, nil
}

func (e *encoder) Close(context.Context) error { return nil }

// normalise turns the mapping's JSON-ish values into the Go types the Avro schema wants.
func normalise(rec map[string]any) {
	for _, k := range []string{"occurred_at", "received_at"} {
		if n, ok := asInt(rec[k]); ok {
			rec[k] = time.UnixMicro(n).UTC()
		}
	}
	if n, ok := asInt(rec["segment_count"]); ok {
		rec["segment_count"] = int32(n)
	}
	for _, k := range []string{"to", "cc", "bcc"} {
		if rec[k] == nil {
			rec[k] = []any{}
		}
	}
	if media, ok := rec["media"].([]any); ok {
		for _, m := range media {
			if mm, ok := m.(map[string]any); ok {
				if n, ok := asInt(mm["size"]); ok {
					mm["size"] = n
				}
			}
		}
	} else {
		rec["media"] = []any{}
	}
	if attrs, ok := rec["attributes"].(map[string]any); ok {
		for k, v := range attrs {
			if _, isStr := v.(string); !isStr {
				b, _ := json.Marshal(v)
				attrs[k] = string(b)
			}
		}
	} else {
		rec["attributes"] = map[string]any{}
	}
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case float64:
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// ---- Phone numbers -------------------------------------------------------------------------

// normalizeNumber is the connector's normalize_number (connector/providers/fields.py), rule for
// rule: E.164 where the form is unambiguous, otherwise the number as sent (trimmed). Anything
// longer than 64 characters is no phone number and is only trimmed (and not cached); up to 8
// digits is a short code, kept as sent; a '+...' number is parsed as international; bare digits
// as a national number of `country` if one is given, then as international digits without the
// '+'; the first reading that makes a valid number wins. Results are cached, 65,536 entries,
// least recently used first out: the connector's lru_cache(maxsize=65536).
//
// Where Python and this Go differ in the characters they see, Python's meaning is reproduced:
// str.strip() and str.isdigit() (pyIsSpace, pyDigit), Unicode digits read as their ASCII
// digit (Python's phonenumbers reads every decimal digit; the Go port only Arabic-Indic ones),
// and trailing characters that are neither letters, numbers nor '#' stripped before parsing
// (the Go port's pattern for them is Java's class intersection, which Go's regexp reads as
// something else, so it never strips them).
const (
	maxShortCodeDigits = 8     // MAX_SHORT_CODE_DIGITS
	maxNumberChars     = 64    // MAX_NUMBER_CHARS
	numberCacheSize    = 65536 // _normalize_number's lru_cache(maxsize=65536)
)

type numberKey struct{ raw, country string }

var numberCache = func() *lru.Cache[numberKey, string] {
	c, err := lru.New[numberKey, string](numberCacheSize)
	if err != nil {
		panic(err)
	}
	return c
}()

// registerE164 adds `.e164(default_country)` to Bloblang: a string as normalizeNumber gives
// it, an integer as its text so normalised (the connector's expect_str keeps numbers as text),
// anything else (null above all) unchanged.
func registerE164() error {
	spec := bloblang.NewPluginSpec().
		Description("A phone number in E.164 where unambiguous, else as sent (trimmed).").
		Param(bloblang.NewStringParam("default_country").Default(""))
	return bloblang.RegisterMethodV2("e164", spec, func(args *bloblang.ParsedParams) (bloblang.Method, error) {
		country, err := args.GetString("default_country")
		if err != nil {
			return nil, err
		}
		return func(v any) (any, error) {
			switch n := v.(type) {
			case string:
				return normalizeNumber(n, country), nil
			case json.Number:
				if i, ok := new(big.Int).SetString(string(n), 10); ok {
					return normalizeNumber(i.String(), country), nil
				}
			case int64:
				return normalizeNumber(strconv.FormatInt(n, 10), country), nil
			case uint64:
				return normalizeNumber(strconv.FormatUint(n, 10), country), nil
			}
			return v, nil
		}, nil
	})
}

func normalizeNumber(raw, country string) string {
	if utf8.RuneCountInString(raw) > maxNumberChars {
		return strings.TrimFunc(raw, pyIsSpace)
	}
	key := numberKey{raw, country}
	if out, ok := numberCache.Get(key); ok {
		return out
	}
	out := normalizeUncached(raw, country)
	numberCache.Add(key, out)
	return out
}

func normalizeUncached(raw, country string) string {
	number := strings.TrimFunc(raw, pyIsSpace)
	var digits strings.Builder
	count := 0
	for _, r := range number {
		if d, ok := pyDigit(r); ok {
			digits.WriteRune(d)
			count++
		}
	}
	if count <= maxShortCodeDigits { // none at all, or a short code
		return number
	}
	if strings.HasPrefix(number, "+") {
		if out, ok := e164(asciiDigits(number), ""); ok {
			return out
		}
		return number
	}
	if country != "" {
		if out, ok := e164(digits.String(), country); ok {
			return out
		}
	}
	if out, ok := e164("+"+digits.String(), ""); ok {
		return out
	}
	return number
}

// e164 is phonenumbers.parse, is_valid_number and format_number(E164); no reading on an error.
func e164(text, region string) (out string, ok bool) {
	defer func() {
		if recover() != nil {
			out, ok = "", false
		}
	}()
	if !strings.Contains(text, ";phone-context=") { // else RFC 3966, where nothing is stripped
		text = strings.TrimRightFunc(text, unwantedEnd)
	}
	parsed, err := phonenumbers.Parse(text, region)
	if err != nil || !phonenumbers.IsValidNumber(parsed) {
		return "", false
	}
	return phonenumbers.Format(parsed, phonenumbers.E164), true
}

// pyIsSpace is Python's str.isspace: Go's unicode.IsSpace and the four separators \x1c-\x1f.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// unwantedEnd is what Python's phonenumbers strips from the end of a number before parsing:
// anything but a letter, a number or '#' ((?u)(?:_|[^#\w])+$), in Python's Unicode.
func unwantedEnd(r rune) bool {
	return r == '_' || (r != '#' && !unicode.IsLetter(r) && !unicode.IsNumber(r)) ||
		unicode.Is(sinceUnicode15, r)
}

// sinceUnicode15 are the letters and numbers Unicode 15.0 (Go's tables) added to 14.0 (Python
// 3.11's): unassigned characters to Python, so neither letters nor digits there.
var sinceUnicode15 = &unicode.RangeTable{R32: []unicode.Range32{
	{Lo: 0x1123f, Hi: 0x11240, Stride: 1}, {Lo: 0x11f02, Hi: 0x11f02, Stride: 1},
	{Lo: 0x11f04, Hi: 0x11f10, Stride: 1}, {Lo: 0x11f12, Hi: 0x11f33, Stride: 1},
	{Lo: 0x11f50, Hi: 0x11f59, Stride: 1}, {Lo: 0x1342f, Hi: 0x1342f, Stride: 1},
	{Lo: 0x13441, Hi: 0x13446, Stride: 1}, {Lo: 0x1b132, Hi: 0x1b132, Stride: 1},
	{Lo: 0x1b155, Hi: 0x1b155, Stride: 1}, {Lo: 0x1d2c0, Hi: 0x1d2d3, Stride: 1},
	{Lo: 0x1df25, Hi: 0x1df2a, Stride: 1}, {Lo: 0x1e030, Hi: 0x1e06d, Stride: 1},
	{Lo: 0x1e4d0, Hi: 0x1e4eb, Stride: 1}, {Lo: 0x1e4f0, Hi: 0x1e4f9, Stride: 1},
	{Lo: 0x2b739, Hi: 0x2b739, Stride: 1}, {Lo: 0x31350, Hi: 0x323af, Stride: 1},
}}

// pyDigit is Python's str.isdigit for r, and the rune to keep for it: the ASCII digit for a
// decimal digit of any script (what Python's phonenumbers reads it as), the rune itself for the
// other digits (superscripts, circled digits...), which phonenumbers never reads as digits.
func pyDigit(r rune) (rune, bool) {
	if r >= '0' && r <= '9' {
		return r, true
	}
	if r < 0x80 {
		return 0, false
	}
	if d, ok := decimalDigits[r]; ok {
		return d, true
	}
	return r, unicode.Is(otherDigits, r)
}

// asciiDigits is s with every decimal digit of any script as its ASCII digit.
func asciiDigits(s string) string {
	for _, r := range s {
		if r >= 0x80 {
			return strings.Map(func(r rune) rune {
				if d, ok := decimalDigits[r]; ok {
					return d
				}
				return r
			}, s)
		}
	}
	return s
}

// decimalDigits maps the non-ASCII decimal digits (Unicode Nd, which come in runs of ten from
// 0 to 9) to their ASCII digit, but for those Python's Unicode does not have yet.
var decimalDigits = func() map[rune]rune {
	out := make(map[rune]rune, 700)
	add := func(lo, hi, stride uint32) {
		for r := lo; r <= hi; r += stride {
			if r >= 0x80 && !unicode.Is(sinceUnicode15, rune(r)) {
				out[rune(r)] = '0' + rune((r-lo)%10)
			}
		}
	}
	for _, rg := range unicode.Nd.R16 {
		add(uint32(rg.Lo), uint32(rg.Hi), uint32(rg.Stride))
	}
	for _, rg := range unicode.Nd.R32 {
		add(rg.Lo, rg.Hi, rg.Stride)
	}
	return out
}()

// otherDigits are the characters Python's str.isdigit takes that are no decimal digits
// (Numeric_Type=Digit): superscripts, subscripts, circled and parenthesised digits...
var otherDigits = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0xb2, Hi: 0xb3, Stride: 1}, {Lo: 0xb9, Hi: 0xb9, Stride: 1},
		{Lo: 0x1369, Hi: 0x1371, Stride: 1}, {Lo: 0x19da, Hi: 0x19da, Stride: 1},
		{Lo: 0x2070, Hi: 0x2070, Stride: 1}, {Lo: 0x2074, Hi: 0x2079, Stride: 1},
		{Lo: 0x2080, Hi: 0x2089, Stride: 1}, {Lo: 0x2460, Hi: 0x2468, Stride: 1},
		{Lo: 0x2474, Hi: 0x247c, Stride: 1}, {Lo: 0x2488, Hi: 0x2490, Stride: 1},
		{Lo: 0x24ea, Hi: 0x24ea, Stride: 1}, {Lo: 0x24f5, Hi: 0x24fd, Stride: 1},
		{Lo: 0x24ff, Hi: 0x24ff, Stride: 1}, {Lo: 0x2776, Hi: 0x277e, Stride: 1},
		{Lo: 0x2780, Hi: 0x2788, Stride: 1}, {Lo: 0x278a, Hi: 0x2792, Stride: 1},
	},
	R32: []unicode.Range32{
		{Lo: 0x10a40, Hi: 0x10a43, Stride: 1}, {Lo: 0x10e60, Hi: 0x10e68, Stride: 1},
		{Lo: 0x11052, Hi: 0x1105a, Stride: 1}, {Lo: 0x1f100, Hi: 0x1f10a, Stride: 1},
	},
	LatinOffset: 2,
}

// ---- Kafka output --------------------------------------------------------------------------

type output struct {
	seeds  []string
	topic  string
	client *kgo.Client
}

func newOutput(conf *service.ParsedConfig, _ *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	seeds, _ := conf.FieldString("seed_brokers")
	topic, _ := conf.FieldString("topic")
	inFlight, _ := conf.FieldInt("max_in_flight")
	return &output{seeds: strings.Split(seeds, ","), topic: topic}, service.BatchPolicy{}, inFlight, nil
}

func (o *output) Connect(context.Context) error {
	if o.client != nil {
		return nil
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(o.seeds...),
		kgo.DefaultProduceTopic(o.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // acks=all; idempotence is franz-go's default
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordDeliveryTimeout(120*time.Second),
		kgo.MaxBufferedRecords(1_000_000),
	)
	if err != nil {
		return err
	}
	o.client = client
	return nil
}

func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	records := make([]*kgo.Record, 0, len(batch))
	for _, msg := range batch {
		value, err := msg.AsBytes()
		if err != nil {
			return err
		}
		key, _ := msg.MetaGet("kafka_key")
		rec := &kgo.Record{Key: []byte(key), Value: value}
		for _, h := range []string{"event_id", "provider", "event_type"} {
			if v, ok := msg.MetaGet(h); ok {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h, Value: []byte(v)})
			}
		}
		records = append(records, rec)
	}
	return o.client.ProduceSync(ctx, records...).FirstErr()
}

func (o *output) Close(context.Context) error {
	if o.client != nil {
		o.client.Close()
	}
	return nil
}
