package tokenizer

import (
	"fmt"
	"os"

	sentencepiece "github.com/eliben/go-sentencepiece"
	"google.golang.org/protobuf/encoding/protowire"
)

// spmTokenizer wraps go-sentencepiece (BPE models with byte fallback, as Gemma's
// tokenizer.model). The piece list is read from the model proto directly, since the library
// does not expose it.
type spmTokenizer struct {
	proc    *sentencepiece.Processor
	pieces  []string
	ids     map[string]int32
	special SpecialTokens
}

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spmUnknown = 2
	spmControl = 3
)

func loadSentencePiece(file string, names specialNames) (tok Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("tokenizer: %s: malformed tokenizer.model (%v)", file, r)
		}
	}()
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	pieces, types, err := spmPieces(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", file, err)
	}
	proc, err := sentencepiece.NewProcessorFromPath(file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", file, err)
	}
	t := &spmTokenizer{proc: proc, pieces: pieces, ids: make(map[string]int32, len(pieces))}
	for i, p := range pieces {
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = int32(i)
		}
	}
	info := proc.ModelInfo()
	t.special = resolveSpecial(names, t.TokenID)
	// The model's own control tokens win over conventional names when the config names none.
	if names.bos == "" && info.BeginningOfSentenceID >= 0 {
		t.special.BOS = int32(info.BeginningOfSentenceID)
	}
	if names.eos == "" && info.EndOfSentenceID >= 0 {
		t.special.EOS = int32(info.EndOfSentenceID)
	}
	if names.pad == "" && info.PadID >= 0 {
		t.special.PAD = int32(info.PadID)
	}
	if names.unk == "" {
		for i, ty := range types {
			if ty == spmUnknown {
				t.special.UNK = int32(i)
				break
			}
		}
	}
	return t, nil
}

// spmPieces reads the piece strings and types of a ModelProto (field 1: repeated SentencePiece
// {1: piece, 2: score, 3: type}).
func spmPieces(data []byte) ([]string, []int, error) {
	var pieces []string
	var types []int
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil, nil, fmt.Errorf("not a SentencePiece model: %v", protowire.ParseError(n))
		}
		data = data[n:]
		if num == 1 && typ == protowire.BytesType {
			msg, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return nil, nil, fmt.Errorf("not a SentencePiece model: %v", protowire.ParseError(m))
			}
			data = data[m:]
			piece, ty, err := spmPiece(msg)
			if err != nil {
				return nil, nil, err
			}
			pieces = append(pieces, piece)
			types = append(types, ty)
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return nil, nil, fmt.Errorf("not a SentencePiece model: %v", protowire.ParseError(m))
		}
		data = data[m:]
	}
	if len(pieces) == 0 {
		return nil, nil, fmt.Errorf("no pieces: not a SentencePiece model")
	}
	return pieces, types, nil
}

func spmPiece(msg []byte) (string, int, error) {
	piece, ty := "", 1 // NORMAL by default
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return "", 0, fmt.Errorf("bad piece: %v", protowire.ParseError(n))
		}
		msg = msg[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			b, m := protowire.ConsumeBytes(msg)
			if m < 0 {
				return "", 0, fmt.Errorf("bad piece: %v", protowire.ParseError(m))
			}
			piece, msg = string(b), msg[m:]
		case num == 3 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(msg)
			if m < 0 {
				return "", 0, fmt.Errorf("bad piece: %v", protowire.ParseError(m))
			}
			ty, msg = int(v), msg[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, msg)
			if m < 0 {
				return "", 0, fmt.Errorf("bad piece: %v", protowire.ParseError(m))
			}
			msg = msg[m:]
		}
	}
	return piece, ty, nil
}

// Encode implements Tokenizer.
func (t *spmTokenizer) Encode(text string) []int32 {
	toks := t.proc.Encode(text)
	ids := make([]int32, len(toks))
	for i, tk := range toks {
		ids[i] = int32(tk.ID)
	}
	return ids
}

// Decode implements Tokenizer. Ids out of range are skipped.
func (t *spmTokenizer) Decode(ids []int32) string {
	in := make([]int, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.pieces) {
			in = append(in, int(id))
		}
	}
	return t.proc.Decode(in)
}

// Pieces implements Tokenizer.
func (t *spmTokenizer) Pieces(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && int(id) < len(t.pieces) {
			out[i] = t.pieces[id]
		}
	}
	return out
}

// VocabSize implements Tokenizer.
func (t *spmTokenizer) VocabSize() int { return len(t.pieces) }

// Special implements Tokenizer.
func (t *spmTokenizer) Special() SpecialTokens { return t.special }

// TokenID implements Tokenizer.
func (t *spmTokenizer) TokenID(piece string) (int32, bool) {
	id, ok := t.ids[piece]
	return id, ok
}
