package pd

import "fmt"

// DecodeStores parses the body of GET /pd/api/v1/stores (or /stores/check)
// from any PD version 2.x..8.5. Malformed or truncated input is an error
// wrapping ErrDecode.
func DecodeStores(data []byte) ([]StoreInfo, error) {
	var out StoresInfo
	if err := decodeJSON(data, &out); err != nil {
		return nil, fmt.Errorf("%w: stores: %w", ErrDecode, err)
	}
	return out.Stores, nil
}

// DecodeRegion parses the body of GET /pd/api/v1/region/id/{id}. A region
// with id 0 (PD's answer for an unknown id) is an error wrapping
// ErrRegionNotFound; malformed input wraps ErrDecode.
func DecodeRegion(data []byte) (*Region, error) {
	var out Region
	if err := decodeJSON(data, &out); err != nil {
		return nil, fmt.Errorf("%w: region: %w", ErrDecode, err)
	}
	if out.ID == 0 {
		return nil, fmt.Errorf("%w: region id 0", ErrRegionNotFound)
	}
	return &out, nil
}
