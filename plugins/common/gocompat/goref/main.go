// Reference binder for the differential test (run.sh): reads
// "<model>\t<base64 body>" lines, binds each body exactly as the Go seed
// did (gin ShouldBindJSON + validator, then json.Marshal) and prints the
// outcome base64-encoded, one line per case.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/gin-gonic/gin/binding"
	"gocompat/model"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 2)
		body, _ := base64.StdEncoding.DecodeString(parts[1])
		var obj any
		switch parts[0] {
		case "chat":
			obj = &model.ChatMessage{}
		case "purchase":
			obj = &model.PurchaseUpdate{}
		case "payment":
			obj = &model.PaymentReminder{}
		default:
			obj = &model.ShippingUpdate{}
		}
		var out string
		if err := binding.JSON.BindBody(body, obj); err != nil {
			out = "err:" + err.Error()
		} else if b, err := json.Marshal(obj); err != nil {
			out = "ok:MARSHAL-ERROR"
		} else {
			out = "ok:" + string(b)
		}
		fmt.Fprintln(w, base64.StdEncoding.EncodeToString([]byte(out)))
	}
}
