package evaluation

// Passage is one retrieved knowledge-base chunk.
type Passage struct {
	// ID is the chunk id (curriculum.Chunk.ID).
	ID string
	// Text is the chunk text as it goes into the prompt.
	Text string
	// Score is the retriever's relevance score (higher is better).
	Score float64
}

// Retriever returns the k passages most relevant to a query, best first. Package rag provides
// implementations (BM25, dense, hybrid).
type Retriever interface {
	Retrieve(query string, k int) ([]Passage, error)
}
