// The Go seed's wire models (contract 2.5), field for field, so the
// reference binder reproduces its gin binding and encoding/json output.
package model

import "time"

type ChatMessage struct {
	MessageID string    `json:"message_id" bson:"_id,omitempty"`
	Content   string    `json:"content" bson:"content" binding:"required"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`

	ChatMetadata `json:",inline" bson:",inline"`
}

type ChatMetadata struct {
	StreamID   string `json:"stream_id" bson:"stream_id" form:"stream_id" binding:"required"`
	SenderID   string `json:"sender_id" bson:"sender_id" form:"sender_id" binding:"required"`
	ReceiverID string `json:"receiver_id" bson:"receiver_id" form:"receiver_id" binding:"required"`
}

type PurchaseUpdate struct {
	OrderID     string    `json:"order_id" bson:"_id" binding:"required"`
	BuyerID     string    `json:"buyer_id" bson:"buyer_id" binding:"required"`
	ShopOwnerID string    `json:"shop_owner_id" bson:"shop_owner_id" binding:"required"`
	ProductName string    `json:"product_name" bson:"product_name" binding:"required"`
	Amount      float64   `json:"amount" bson:"amount" binding:"required"`
	Currency    string    `json:"currency" bson:"currency" binding:"required"`
	Status      string    `json:"status" bson:"status" binding:"required"`
	PurchasedAt time.Time `json:"purchased_at" bson:"purchased_at"`
}

type PaymentReminder struct {
	OrderID     string    `json:"order_id" binding:"required"`
	Amount      float64   `json:"amount" binding:"required"`
	Currency    string    `json:"currency" binding:"required"`
	DueDate     time.Time `json:"due_date" binding:"required"`
	DaysOverdue int       `json:"days_overdue"`
	Message     string    `json:"message"`
}

type ShippingUpdate struct {
	OrderID           string    `json:"order_id" binding:"required"`
	TrackingNumber    string    `json:"tracking_number"`
	Status            string    `json:"status" binding:"required"`
	Location          string    `json:"location"`
	EstimatedDelivery time.Time `json:"estimated_delivery"`
	UpdatedAt         time.Time `json:"updated_at"`
}
