-- +goose Up
-- issue 21: an optional E.164 phone number the order's SMS notifications
-- (confirmation, ready) go to; NULL when the guest gave none.
ALTER TABLE orders ADD COLUMN customer_phone TEXT;

-- +goose Down
ALTER TABLE orders DROP COLUMN customer_phone;
