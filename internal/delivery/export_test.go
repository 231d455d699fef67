package delivery

import (
	"fmt"

	"github.com/resetd/resetd/internal/seal"
)

// SealLegacyForTest seals m into a job's arguments the way an earlier
// version did: bound to the delivery's id.
func SealLegacyForTest(key *seal.Key, deliveryID int64, m Message) []byte {
	b, err := pack(m)
	if err != nil {
		panic(err)
	}
	return key.Seal(b, fmt.Sprintf("%s/%d", sealContext, deliveryID))
}
