# Builds the mcpidp binary; used by compose.yaml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/mcpidp ./cmd/mcpidp

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/mcpidp /mcpidp
EXPOSE 8080
ENTRYPOINT ["/mcpidp"]
CMD ["serve"]
