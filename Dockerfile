# A static resetd on an empty image: no shell, no libc, no package to patch.
#   docker build -t resetd .
#   docker run --rm -p 8080:8080 -e RESETD_SECRET_KEY=… -e RESETD_SMTP_URL=… \
#     -e RESETD_PUBLIC_URL=https://reset.bank.example -v resetd:/data resetd
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go (modernc SQLite, pgx): no cgo, so the binary runs on scratch.
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/resetd ./cmd/resetd \
 && mkdir -p /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /usr/share/zoneinfo /usr/share/zoneinfo
COPY --from=build /out/resetd /resetd
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV RESETD_ADDR=0.0.0.0:8080 RESETD_DB=sqlite:/data/resetd.db
EXPOSE 8080
ENTRYPOINT ["/resetd"]
CMD ["serve"]
